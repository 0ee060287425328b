/*
 * bootfile.h - the files the bootstrap manages, as text: the PostgreSQL
 * settings sized for the machine, the pg_hba.conf block, single settings
 * in postgresql.conf, the managed keys of agent.ini; the checks of the
 * per-deployment values; and atomic writes that change a file only when
 * its content differs.
 */
#ifndef BOOTFILE_H
#define BOOTFILE_H

#include <stddef.h>
#include <sys/types.h>

#define BOOTFILE_HBA_BEGIN	"# BEGIN orchestrator-agent bootstrap " \
				"(managed: rewritten on every boot)"
#define BOOTFILE_HBA_END	"# END orchestrator-agent bootstrap"

/* One managed agent.ini key; strings borrowed. */
struct bootfile_kv {
	const char	*section;
	const char	*key;
	const char	*value;
};

/*
 * Is cidr an IPv4 or IPv6 network "ADDR/BITS" with no host bits set?
 * 0, or -1 with err saying what is wrong.
 */
int	 bootfile_cidr_check(const char *cidr, char *err, size_t errlen);

/* Is ip one IPv4 or IPv6 address?  0, or -1 with err filled. */
int	 bootfile_ip_check(const char *ip, char *err, size_t errlen);

/*
 * A PostgreSQL identifier the bootstrap may write unquoted into pg_hba.conf
 * and agent.ini: 1-63 of [a-z0-9_], not starting with a digit.  0 or -1.
 */
int	 bootfile_ident_check(const char *name);

/*
 * The settings file for a machine with mem_kib of memory listening on
 * localhost and listen_ip.  Returns text owned by the caller (free), or
 * NULL when out of memory.
 */
char	*bootfile_pg_settings(long long mem_kib, const char *listen_ip);

/*
 * old (NULL: no file) with the managed block for db, user and cidr put in
 * place of the previous block, or before the first rule when there is none
 * (pg_hba.conf is first match: the block must precede Debian's
 * "local all all peer").  Other lines are kept.  Returns text owned by the
 * caller (free), or NULL when out of memory.
 */
char	*bootfile_hba(const char *old, const char *db, const char *user,
	    const char *cidr);

/*
 * old with the uncommented "key = ..." lines replaced by key = 'value',
 * or the line appended when there is none.  Caller frees; NULL: no memory.
 */
char	*bootfile_conf_set(const char *old, const char *key,
	    const char *value);

/*
 * The value of the last uncommented "key = 'value'" line of text, quotes
 * removed, into out; 0, or -1 when there is none.
 */
int	 bootfile_conf_get(const char *text, const char *key, char *out,
	    size_t outlen);

/*
 * old (NULL: no file) with the n managed keys set: an existing line of the
 * key in its section is replaced, a missing key goes after its section's
 * header, a missing section is appended; comments and every other key are
 * kept.  Returns text owned by the caller (free), or NULL (no memory).
 */
char	*bootfile_ini(const char *old, const struct bootfile_kv *kv, size_t n);

/*
 * Read path into *text (caller frees).  0, 1 when it does not exist
 * (*text NULL), -1 with err filled.
 */
int	 bootfile_read(const char *path, char **text, char *err,
	    size_t errlen);

/*
 * Make path hold text: nothing is written when it already does (*changed
 * 0); otherwise a temporary file in the same directory is written, synced
 * and renamed over it (*changed 1), so a crash leaves the old or the new
 * file, never half of one.  An existing file keeps its owner and mode; a
 * new one gets mode and, when group names an existing group, that group.
 * 0, or -1 with err filled.
 */
int	 bootfile_write(const char *path, const char *text, mode_t mode,
	    const char *group, int *changed, char *err, size_t errlen);

#endif
