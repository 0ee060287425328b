/*
 * bootfile.c - text edits for the files the bootstrap owns a part of.
 * They are pure functions of the old text so that a re-run produces the
 * same bytes and the bootstrap can tell "unchanged" from "changed" by
 * comparing, and so that unit tests can pin them down.
 *
 * Pointers passed to functions here are borrowed for the call unless a
 * comment says otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootfile.h"

#define BOOTFILE_MAX	(4 * 1024 * 1024)	/* no managed file is larger */

int
bootfile_ip_check(const char *ip, char *err, size_t errlen)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, ip, buf) == 1 ||
	    inet_pton(AF_INET6, ip, buf) == 1)
		return 0;
	snprintf(err, errlen, "'%.100s' is not an IPv4 or IPv6 address", ip);
	return -1;
}

int
bootfile_cidr_check(const char *cidr, char *err, size_t errlen)
{
	unsigned char	 a[16];
	const char	*slash = strchr(cidr, '/');
	char		 addr[64], *end;
	long		 bits;
	int		 af, width, i;

	if (slash == NULL || (size_t)(slash - cidr) >= sizeof(addr)) {
		snprintf(err, errlen, "'%.100s' is not a network in CIDR "
		    "notation such as 10.8.0.0/28", cidr);
		return -1;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - cidr), cidr);
	af = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	width = af == AF_INET6 ? 128 : 32;
	errno = 0;
	bits = strtol(slash + 1, &end, 10);
	if (inet_pton(af, addr, a) != 1 || slash[1] == '\0' || *end != '\0' ||
	    errno != 0 || bits < 0 || bits > width) {
		snprintf(err, errlen, "'%.100s' is not a network in CIDR "
		    "notation such as 10.8.0.0/28", cidr);
		return -1;
	}
	for (i = 0; i < width / 8; i++) {
		int keep = (int)bits - i * 8;
		unsigned mask = keep >= 8 ? 0xffu : keep <= 0 ? 0u :
		    (0xffu << (8 - keep)) & 0xffu;

		if ((a[i] & ~mask & 0xffu) != 0) {
			snprintf(err, errlen, "'%.100s' has host bits set; "
			    "write the network address (e.g. 10.8.0.0/28)",
			    cidr);
			return -1;
		}
	}
	return 0;
}

int
bootfile_ident_check(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= 63 && !(name[0] >= '0' && name[0] <= '9') &&
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n ? 0 : -1;
}

/* A memstream's text (*buf is only final after fclose), or NULL when
 * writing to it failed. */
static char *
finish(FILE *fp, char **buf, int failed)
{
	if (fclose(fp) != 0 || failed) {
		free(*buf);
		*buf = NULL;
	}
	return *buf;
}

static long long
clamp(long long v, long long lo, long long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

char *
bootfile_pg_settings(long long mem_kib, const char *listen_ip)
{
	long long	 mb = mem_kib / 1024, sb, conns, ecs, wm, mwm, wal;
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*fp = open_memstream(&buf, &len);
	int		 small = mb < 4096;

	if (fp == NULL)
		return NULL;
	/*
	 * Small machines (an e2-micro has 1 GB) keep room for the agent and
	 * the page cache: an eighth for shared_buffers, else the usual
	 * quarter; rounded to 16 MB so a few MB of MemTotal drift between
	 * boots changes nothing.
	 */
	sb = clamp((small ? mb / 8 : mb / 4) + 8, 32, 8192) / 16 * 16;
	conns = small ? 50 : 100;
	ecs = small ? mb / 2 : mb * 3 / 4;
	wm = clamp((mb - sb) / (conns * 4), 1, 64);
	mwm = clamp(mb / 16, 16, 1024);
	wal = small ? 512 : 2048;
	fprintf(fp, "# Written by orchestrator-agent bootstrap for this "
	    "machine (%lld MB); rewritten on every boot.\n"
	    "# Put your own settings in another file of this directory "
	    "(read in name order).\n", mb);
	fprintf(fp, "listen_addresses = 'localhost%s%s'\n",
	    listen_ip && *listen_ip ? "," : "", listen_ip ? listen_ip : "");
	fprintf(fp, "max_connections = %lld\n", conns);
	fprintf(fp, "shared_buffers = %lldMB\n", sb);
	fprintf(fp, "effective_cache_size = %lldMB\n", ecs);
	fprintf(fp, "work_mem = %lldMB\n", wm);
	fprintf(fp, "maintenance_work_mem = %lldMB\n", mwm);
	fprintf(fp, "min_wal_size = 80MB\nmax_wal_size = %lldMB\n", wal);
	fprintf(fp, "checkpoint_completion_target = 0.9\n"
	    "wal_compression = on\n"
	    "password_encryption = 'scram-sha-256'\n");
	return finish(fp, &buf, 0);
}

/* Length of the line at p without its newline; *next is the next line. */
static size_t
line_at(const char *p, const char **next)
{
	const char *nl = strchr(p, '\n');

	*next = nl ? nl + 1 : p + strlen(p);
	return nl ? (size_t)(nl - p) : strlen(p);
}

/* Does the line (len bytes) equal s, ignoring trailing blanks? */
static int
line_is(const char *p, size_t len, const char *s)
{
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' ||
	    p[len - 1] == '\r'))
		len--;
	return len == strlen(s) && strncmp(p, s, len) == 0;
}

/* First non-blank character of the line, or '\0' for a blank one. */
static char
first_char(const char *p, size_t len)
{
	size_t i = strspn(p, " \t");

	return i < len ? p[i] : '\0';
}

char *
bootfile_hba(const char *old, const char *db, const char *user,
    const char *cidr)
{
	const char	*p, *next, *begin = NULL, *end = NULL, *at = NULL;
	char		*buf = NULL, *block = NULL;
	size_t		 len = 0, blen = 0, n;
	FILE		*fp;
	int		 failed;

	fp = open_memstream(&block, &blen);
	if (fp == NULL)
		return NULL;
	fprintf(fp, "%s\n"
	    "# the agent, over the socket, with the Secret Manager password;\n"
	    "# any database, for restore --to and verify --restore\n"
	    "local\tall\t%s\t\t\tscram-sha-256\n"
	    "# Cloud Run through the Serverless VPC Access connector\n"
	    "host\t%s\t%s\t%s\tscram-sha-256\n%s\n",
	    BOOTFILE_HBA_BEGIN, user, db, user, cidr, BOOTFILE_HBA_END);
	block = finish(fp, &block, 0);
	if (block == NULL)
		return NULL;
	if (old == NULL)
		old = "";
	for (p = old; *p != '\0'; p = next) {
		n = line_at(p, &next);
		if (begin == NULL && line_is(p, n, BOOTFILE_HBA_BEGIN))
			begin = p;
		else if (begin != NULL && end == NULL &&
		    line_is(p, n, BOOTFILE_HBA_END))
			end = next;
		else if (at == NULL && first_char(p, n) != '\0' &&
		    first_char(p, n) != '#')
			at = p;
	}
	if (begin == NULL)
		begin = end = at ? at : p;
	else if (end == NULL)	/* a damaged block: drop its first line */
		line_at(begin, &end);
	fp = open_memstream(&buf, &len);
	if (fp == NULL) {
		free(block);
		return NULL;
	}
	failed = fwrite(old, 1, (size_t)(begin - old), fp) !=
	    (size_t)(begin - old);
	if (begin > old && begin[-1] != '\n')
		fputc('\n', fp);
	fputs(block, fp);
	fputs(end, fp);
	free(block);
	return finish(fp, &buf, failed);
}

/* Does the line set key ("key = ..." or "key=...", any case)? */
static int
sets_key(const char *p, size_t len, const char *key)
{
	size_t i = strspn(p, " \t"), k = strlen(key);

	if (i + k > len || strncasecmp(p + i, key, k) != 0)
		return 0;
	i += k;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == '=';
}

char *
bootfile_conf_set(const char *old, const char *key, const char *value)
{
	const char	*p, *next;
	char		*buf = NULL;
	size_t		 len = 0, n;
	FILE		*fp = open_memstream(&buf, &len);
	int		 found = 0, failed = 0;

	if (fp == NULL)
		return NULL;
	for (p = old ? old : ""; *p != '\0'; p = next) {
		n = line_at(p, &next);
		if (sets_key(p, n, key)) {
			fprintf(fp, "%s = '%s'\n", key, value);
			found = 1;
			continue;
		}
		failed |= fwrite(p, 1, (size_t)(next - p), fp) !=
		    (size_t)(next - p);
		if (*next == '\0' && p[n] != '\n')
			fputc('\n', fp);
	}
	if (!found)
		fprintf(fp, "%s = '%s'\n", key, value);
	return finish(fp, &buf, failed);
}

int
bootfile_conf_get(const char *text, const char *key, char *out, size_t outlen)
{
	const char	*p, *next, *v, *e;
	size_t		 n;
	int		 rc = -1;

	for (p = text; *p != '\0'; p = next) {
		n = line_at(p, &next);
		if (!sets_key(p, n, key))
			continue;
		v = (const char *)memchr(p, '=', n) + 1;
		v += strspn(v, " \t");
		if (*v == '\'') {
			v++;
			e = memchr(v, '\'', (size_t)(p + n - v));
		} else {
			e = v + strcspn(v, " \t#\n");
		}
		if (e == NULL || e > p + n)
			continue;
		snprintf(out, outlen, "%.*s", (int)(e - v), v);
		rc = 0;
	}
	return rc;
}

/* The section a "[name]" line opens, into out; 0, or -1 if not a header. */
static int
ini_section(const char *p, size_t len, char *out, size_t outlen)
{
	size_t		 i = strspn(p, " \t");
	const char	*close;

	if (i >= len || p[i] != '[')
		return -1;
	close = memchr(p + i, ']', len - i);
	if (close == NULL)
		return -1;
	snprintf(out, outlen, "%.*s", (int)(close - p - i - 1), p + i + 1);
	return 0;
}

/* Index of the managed key this line sets in section sec, or -1. */
static int
ini_managed(const char *p, size_t len, const char *sec,
    const struct bootfile_kv *kv, size_t n)
{
	size_t i;

	if (first_char(p, len) == ';' || first_char(p, len) == '#')
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(kv[i].section, sec) == 0 &&
		    sets_key(p, len, kv[i].key))
			return (int)i;
	return -1;
}

/* Write the keys of section sec neither in skip nor done, marking them. */
static void
ini_emit_missing(FILE *fp, const char *sec, const struct bootfile_kv *kv,
    size_t n, const char *skip, char *done)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!skip[i] && !done[i] && strcmp(kv[i].section, sec) == 0) {
			fprintf(fp, "%s = %s\n", kv[i].key, kv[i].value);
			done[i] = 1;
		}
}

char *
bootfile_ini(const char *old, const struct bootfile_kv *kv, size_t n)
{
	const char	*p, *next;
	char		 sec[128] = "", *buf = NULL, *present, *done;
	size_t		 len = 0, ln, i;
	FILE		*fp;
	int		 k, failed = 0;

	present = calloc(n + 1, 1);
	done = calloc(n + 1, 1);
	fp = open_memstream(&buf, &len);
	if (present == NULL || done == NULL || fp == NULL) {
		free(present);
		free(done);
		if (fp != NULL)
			free(finish(fp, &buf, 1));
		return NULL;
	}
	if (old == NULL)
		old = "; Written by orchestrator-agent bootstrap.  The keys it "
		    "manages (from the VM's\n; metadata) are set again on "
		    "every boot; other keys and comments are kept.\n";
	/* Which managed keys exist, so the rest go after their header. */
	for (p = old; *p != '\0'; p = next) {
		ln = line_at(p, &next);
		if (ini_section(p, ln, sec, sizeof(sec)) == 0)
			continue;
		k = ini_managed(p, ln, sec, kv, n);
		if (k >= 0)
			present[k] = 1;
	}
	sec[0] = '\0';
	for (p = old; *p != '\0'; p = next) {
		ln = line_at(p, &next);
		k = ini_managed(p, ln, sec, kv, n);
		if (k >= 0) {
			if (!done[k])
				fprintf(fp, "%s = %s\n", kv[k].key,
				    kv[k].value);
			done[k] = 1;
			continue;
		}
		failed |= fwrite(p, 1, (size_t)(next - p), fp) !=
		    (size_t)(next - p);
		if (*next == '\0' && p[ln] != '\n')
			fputc('\n', fp);
		/* Missing keys of this section go right after its header. */
		if (ini_section(p, ln, sec, sizeof(sec)) == 0)
			ini_emit_missing(fp, sec, kv, n, present, done);
	}
	/* Sections the file does not have yet. */
	for (i = 0; i < n; i++)
		if (!present[i] && !done[i]) {
			fprintf(fp, "\n[%s]\n", kv[i].section);
			ini_emit_missing(fp, kv[i].section, kv, n, present,
			    done);
		}
	free(present);
	free(done);
	return finish(fp, &buf, failed);
}

int
bootfile_read(const char *path, char **text, char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	ssize_t		 r;
	size_t		 len = 0;
	int		 fd, rc = -1;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1 && errno == ENOENT)
		return 1;
	if (fd == -1) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > BOOTFILE_MAX) {
		snprintf(err, errlen, "%s is not a regular file of at most "
		    "%d bytes", path, BOOTFILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory reading %s", path);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "reading %s: %s", path,
			    r == 0 ? "file shrank" : strerror(errno));
			goto out;
		}
		len += (size_t)r;
	}
	buf[len] = '\0';
	*text = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* The temporary file's owner and mode: the old file's, else the new ones. */
static int
set_owner(int fd, const char *path, mode_t mode, const char *group,
    char *err, size_t errlen)
{
	struct stat	 st;
	struct group	*gr;
	uid_t		 uid = (uid_t)-1;
	gid_t		 gid = (gid_t)-1;

	if (stat(path, &st) == 0) {
		mode = st.st_mode & 07777;
		uid = st.st_uid;
		gid = st.st_gid;
	} else if (group != NULL) {
		gr = getgrnam(group);
		if (gr != NULL)
			gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchown(fd, uid, gid) == -1 && (uid != geteuid() || errno != EPERM)) {
		snprintf(err, errlen, "cannot give %s its owner: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1) {
		snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
bootfile_write(const char *path, const char *text, mode_t mode,
    const char *group, int *changed, char *err, size_t errlen)
{
	char	*old = NULL, *dirc = NULL, *basec = NULL, *dir, tmp[4096];
	size_t	 len = strlen(text), off = 0;
	ssize_t	 w;
	int	 fd = -1, dfd, r, rc = -1;

	*changed = 0;
	r = bootfile_read(path, &old, err, errlen);
	if (r == -1)
		return -1;
	if (r == 0 && strcmp(old, text) == 0) {
		free(old);
		return 0;
	}
	free(old);
	dirc = strdup(path);
	basec = strdup(path);
	if (dirc == NULL || basec == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	dir = dirname(dirc);
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, basename(basec));
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd == -1) {
		snprintf(err, errlen, "cannot create a temporary file beside "
		    "%s: %s", path, strerror(errno));
		tmp[0] = '\0';
		goto out;
	}
	if (set_owner(fd, path, mode, group, err, errlen) == -1)
		goto out;
	while (off < len) {
		w = write(fd, text + off, len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1) {
			snprintf(err, errlen, "writing %s: %s", tmp,
			    strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		snprintf(err, errlen, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	/* The rename itself must survive a crash too. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	*changed = 1;
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (tmp[0] != '\0' && rc == -1)
		unlink(tmp);
	free(dirc);
	free(basec);
	return rc;
}
