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
#include <time.h>

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

/* The object permissions the agent needs on a bucket. */
#define STORE_NPERMS	4
extern const char *const store_perms[STORE_NPERMS];

/* Is the target a Cloud Storage bucket (1) or a directory (0)? */
int		 store_is_remote(const struct store *);
/*
 * Can the agent use the target?  A bucket: testIamPermissions for
 * store_perms (*granted: bit i set when store_perms[i] is granted) and the
 * service's clock from its Date header (*server_time, 0 if none).  A
 * directory: all bits when it is readable and writable.  0, or -1 with
 * err filled.
 */
int		 store_probe(struct store *, unsigned *granted,
		    time_t *server_time, char *err, size_t errlen);

/*
 * Record an attempt in the state file DIR/FILE that doctor and metrics
 * read: att (borrowed; "ok" is added) becomes "last_attempt", and also
 * "last_success" when ok; the previous success is kept on failure.  The
 * file is replaced atomically.  0, or -1 with err filled.
 */
int		 store_state_record(const char *dir, const char *file,
		    json_object *att, int ok, char *err, size_t errlen);

/* Helpers also used for the state file. */
int		 store_mkdirs(const char *path);
int		 store_write_atomic(const char *path, const char *text,
		    char *err, size_t errlen);
/* The same with the file's mode (store_write_atomic: 0600). */
int		 store_write_file(const char *path, const char *text, int mode,
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
