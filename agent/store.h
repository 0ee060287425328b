/*
 * store.h - where backups live: a local directory (file:///DIR) or a
 * Cloud Storage bucket (gs://BUCKET/PREFIX), behind one interface.
 *
 * Each backup is an object NAME plus a record NAME.json (database,
 * versions, sizes, compression, checksums, duration, generation); the
 * records, listed from the target itself, are the catalogue of record.
 */
#ifndef STORE_H
#define STORE_H

#include <json-c/json.h>
#include <stddef.h>

struct cfg;
struct store;
struct store_writer;

/* Receives an object's bytes in order; non-zero stops the read. */
typedef int	(*store_read_fn)(void *arg, const void *buf, size_t len);

/*
 * Open the configured [backup] target.  Returns a store owned by the
 * caller (store_free), or NULL with err naming the target and the problem.
 */
struct store	*store_open(const struct cfg *, char *err, size_t errlen);
void		 store_free(struct store *);
/* The target as configured, for messages; owned by the store. */
const char	*store_target(const struct store *);

/*
 * Start writing object name (relative to the target).  meta: NULL or a
 * NULL-terminated key, value, ... list stored with the object where the
 * backend can.  The name must not exist yet.  Returns a writer owned by
 * the caller until store_commit or store_abort, or NULL with err.
 */
struct store_writer *store_create(struct store *, const char *name,
		    const char *const *meta, char *err, size_t errlen);
int		 store_write(struct store_writer *, const void *buf, size_t len,
		    char *err, size_t errlen);
/*
 * Make the object durable and visible, then store rec (borrowed; its
 * "generation" is set for Cloud Storage) as NAME.json.  Frees the writer
 * in every case.  0, or -1 with err (nothing was published).
 */
int		 store_commit(struct store_writer *, json_object *rec, char *err,
		    size_t errlen);
/* Drop what was written and free the writer.  NULL-tolerant. */
void		 store_abort(struct store_writer *);

/*
 * The records of every backup at the target, sorted by name (oldest
 * first).  Returns an array owned by the caller, or NULL with err.
 */
json_object	*store_records(struct store *, char *err, size_t errlen);

/* Stream the object of rec (borrowed) to fn.  0, or -1 with err. */
int		 store_read(struct store *, json_object *rec, store_read_fn fn,
		    void *arg, char *err, size_t errlen);

/*
 * Delete the backup of rec: its record first, then the object (on Cloud
 * Storage only if it is still the generation recorded).  0, or -1 with err.
 */
int		 store_delete(struct store *, json_object *rec, char *err,
		    size_t errlen);

/* Helpers also used for the state file. */
int		 store_mkdirs(const char *path);
int		 store_write_atomic(const char *path, const char *text,
		    char *err, size_t errlen);

/*
 * The JSON state files in [agent] state_dir that doctor and metrics read
 * (backup-state.json, maintain-state.json).  store_state_read returns the
 * object in dir/name, or a new empty object when the file is missing or
 * not an object; the caller owns it.  store_state_write creates dir when
 * needed and replaces the file atomically with st (borrowed); 0, or -1
 * with err.
 */
json_object	*store_state_read(const char *dir, const char *name);
int		 store_state_write(const char *dir, const char *name,
		    json_object *st, char *err, size_t errlen);

#endif
