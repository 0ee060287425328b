/*
 * bootdisk.c - the data disk.  The one irreversible act in the bootstrap
 * is mkfs, so it runs only after blkid's low-level probe (-p, no cache)
 * says the device holds nothing at all.  Programs (blkid, mkfs.ext4,
 * mount, cp, chown, pg_ctlcluster) run without a shell through proc_run.
 *
 * Pointers passed to functions here are borrowed for the call unless a
 * comment says otherwise.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootdisk.h"
#include "bootfile.h"
#include "proc.h"

/* Run argv; 0 when it exited 0, else -1 with err naming it and its output. */
static int
run(char *const argv[], char *out, size_t outlen, char *err, size_t errlen)
{
	char	why[1024];
	size_t	n;
	int	st;

	st = proc_run(argv, out, outlen, why, sizeof(why));
	if (st == 0)
		return 0;
	n = strlen(why);
	while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
		why[--n] = '\0';
	if (st == -1)
		snprintf(err, errlen, "%s", why);
	else
		snprintf(err, errlen, "%s %s exited with status %d%s%s",
		    argv[0], argv[1] ? argv[1] : "", st, *why ? ": " : "",
		    why);
	return -1;
}

/* Drop trailing whitespace (blkid ends its value with a newline). */
static void
chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

int
bootdisk_fs_type(const char *dev, char *type, size_t typelen, char *err,
    size_t errlen)
{
	char	*argv[] = { "blkid", "-p", "-s", "TYPE", "-o", "value",
	    (char *)dev, NULL };
	char	 why[1024];
	int	 st;

	type[0] = '\0';
	st = proc_run(argv, type, typelen, why, sizeof(why));
	chomp(type);
	chomp(why);
	/* blkid -p exits 2 when it identifies nothing: an empty disk. */
	if (st == 2 && type[0] == '\0')
		return 0;
	if (st == 0 && type[0] != '\0')
		return 0;
	if (st == 0) {
		snprintf(err, errlen, "blkid finds something on %s that is not "
		    "a filesystem (a partition table?); refusing to format it: "
		    "inspect it with 'blkid -p %s' and wipe it (wipefs) only if "
		    "nothing on it is needed", dev, dev);
		return -1;
	}
	snprintf(err, errlen, "blkid -p %s %s (status %d)%s%s", dev,
	    st == -1 ? "could not run" : "failed", st, *why ? ": " : "", why);
	return -1;
}

int
bootdisk_mounted(const char *path)
{
	FILE	*fp = fopen("/proc/self/mountinfo", "re");
	char	 line[4096], mp[4096];
	int	 found = 0;

	if (fp == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 &&
		    strcmp(mp, path) == 0)
			found = 1;
	fclose(fp);
	return found;
}

/*
 * fstab text with the line for mountpoint set to want: an existing line
 * for the mount point is replaced (a new disk has a new UUID), else want
 * is appended.  Caller frees; NULL when out of memory.
 */
static char *
fstab_set(const char *old, const char *mountpoint, const char *want)
{
	const char	*p, *next, *nl;
	char		 f1[1024], f2[1024], *buf = NULL;
	size_t		 len = 0, n;
	FILE		*fp = open_memstream(&buf, &len);
	int		 found = 0;

	if (fp == NULL)
		return NULL;
	for (p = old ? old : ""; *p != '\0'; p = next) {
		nl = strchr(p, '\n');
		next = nl ? nl + 1 : p + strlen(p);
		n = (size_t)(next - p);
		if (p[strspn(p, " \t")] != '#' &&
		    sscanf(p, "%1023s %1023s", f1, f2) == 2 &&
		    strcmp(f2, mountpoint) == 0 && (nl == NULL ||
		    strlen(f1) + strlen(f2) < n)) {
			if (!found)
				fprintf(fp, "%s\n", want);
			found = 1;
			continue;
		}
		fwrite(p, 1, n, fp);
		if (nl == NULL)
			fputc('\n', fp);
	}
	if (!found)
		fprintf(fp, "%s\n", want);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int
bootdisk_prepare(const struct bootdisk_opts *o, FILE *out, int *mounted,
    char *err, size_t errlen)
{
	char		 type[64], uuid[128], line[1024], why[1024];
	char		*mkfs[] = { "mkfs.ext4", "-q", "-F", "-m", "0", "-L",
	    "pgdata", "-E", "lazy_itable_init=0,lazy_journal_init=0",
	    (char *)o->device, NULL };
	char		*blkid[] = { "blkid", "-p", "-s", "UUID", "-o",
	    "value", (char *)o->device, NULL };
	char		*mnt[] = { "mount", "-o", "noatime", (char *)o->device,
	    (char *)o->mountpoint, NULL };
	char		*old = NULL, *text = NULL;
	struct stat	 st;
	int		 changed, rc = -1;

	*mounted = 0;
	if (stat(o->device, &st) == -1 && errno == ENOENT) {
		fprintf(out, "disk: %s is not attached; PostgreSQL keeps its "
		    "data on the boot disk\n", o->device);
		return 0;
	}
	if (bootdisk_fs_type(o->device, type, sizeof(type), err, errlen) ==
	    -1)
		return -1;
	if (type[0] != '\0') {
		fprintf(out, "disk: %s already has a %s filesystem; not "
		    "formatting\n", o->device, type);
	} else {
		if (run(mkfs, NULL, 0, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "formatting %s: %s", o->device,
			    why);
			return -1;
		}
		snprintf(type, sizeof(type), "ext4");
		fprintf(out, "disk: %s was empty; made an ext4 filesystem\n",
		    o->device);
	}
	if (run(blkid, uuid, sizeof(uuid), why, sizeof(why)) == -1) {
		snprintf(err, errlen, "reading the UUID of %s: %s", o->device,
		    why);
		return -1;
	}
	chomp(uuid);
	snprintf(line, sizeof(line), "UUID=%s %s %s defaults,nofail,noatime "
	    "0 2", uuid, o->mountpoint, type);
	if (bootfile_read(o->fstab, &old, err, errlen) == -1)
		return -1;
	text = fstab_set(old, o->mountpoint, line);
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (bootfile_write(o->fstab, text, 0644, NULL, &changed, err,
	    errlen) == -1)
		goto out;
	fprintf(out, "disk: %s: %s\n", o->fstab, changed ? "mount line "
	    "for UUID written" : "unchanged");
	if (bootdisk_mounted(o->mountpoint)) {
		fprintf(out, "disk: %s already mounted\n", o->mountpoint);
	} else {
		if (mkdir(o->mountpoint, 0755) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", o->mountpoint,
			    strerror(errno));
			goto out;
		}
		if (run(mnt, NULL, 0, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "mounting %s at %s: %s",
			    o->device, o->mountpoint, why);
			goto out;
		}
		fprintf(out, "disk: mounted %s at %s\n", o->device,
		    o->mountpoint);
	}
	*mounted = 1;
	rc = 0;
out:
	free(old);
	free(text);
	return rc;
}

/*
 * pg_ctlcluster MAJOR main ACTION.  Stopping a stopped cluster (status 2,
 * e.g. after a run that failed half-way) is fine.
 */
static int
pg_ctlcluster(const char *major, const char *action, char *err,
    size_t errlen)
{
	char	*argv[] = { "pg_ctlcluster", (char *)major, "main",
	    (char *)action, NULL };
	char	 why[1024];
	int	 st;

	st = proc_run(argv, NULL, 0, why, sizeof(why));
	chomp(why);
	if (st == 0 || (st == 2 && strcmp(action, "stop") == 0))
		return 0;
	snprintf(err, errlen, "pg_ctlcluster %s main %s %s (status %d)%s%s",
	    major, action, st == -1 ? "could not run" : "failed", st,
	    *why ? ": " : "", why);
	return -1;
}

/* Copy the stopped cluster from src to dst through dst.copy, or adopt. */
static int
place_cluster(const char *src, const char *dst, const char *major,
    const struct passwd *pw, FILE *out, char *err, size_t errlen)
{
	char		 tmp[1100], parent[1100], path[1100], ver[32];
	char		*rm[] = { "rm", "-rf", tmp, NULL };
	char		*cp[] = { "cp", "-a", (char *)src, tmp, NULL };
	char		*chown_[] = { "chown", "-R", "postgres:postgres",
	    (char *)dst, NULL };
	char		*text = NULL;
	struct stat	 st;
	int		 rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.copy", dst);
	snprintf(path, sizeof(path), "%s/PG_VERSION", dst);
	if (stat(path, &st) == 0) {
		if (bootfile_read(path, &text, err, errlen) != 0)
			return -1;
		snprintf(ver, sizeof(ver), "%s", text);
		free(text);
		chomp(ver);
		if (strcmp(ver, major) != 0) {
			snprintf(err, errlen, "%s holds a PostgreSQL %s "
			    "cluster but PostgreSQL %s is installed; install "
			    "postgresql-%s, or upgrade the data with "
			    "pg_upgradecluster", dst, ver, major, ver);
			return -1;
		}
		/* The postgres uid may differ on a new VM. */
		if (run(chown_, NULL, 0, err, errlen) == -1)
			return -1;
		fprintf(out, "datadir: adopted the PostgreSQL %s cluster "
		    "already on the data disk at %s\n", ver, dst);
		return 0;
	}
	snprintf(parent, sizeof(parent), "%.*s", (int)(strrchr(dst, '/') -
	    dst), dst);
	if (mkdir(parent, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", parent, strerror(errno));
		return -1;
	}
	if (chown(parent, pw->pw_uid, pw->pw_gid) == -1) {
		snprintf(err, errlen, "chown %s: %s", parent, strerror(errno));
		return -1;
	}
	/* A copy interrupted by an earlier run is never used: start over. */
	if (run(rm, NULL, 0, err, errlen) == -1 ||
	    run(cp, NULL, 0, err, errlen) == -1)
		goto out;
	if (rename(tmp, dst) == -1) {
		snprintf(err, errlen, "rename %s to %s: %s", tmp, dst,
		    strerror(errno));
		goto out;
	}
	fprintf(out, "datadir: copied %s to %s\n", src, dst);
	rc = 0;
out:
	return rc;
}

int
bootdisk_datadir(const char *conf, const char *major, const char *mountpoint,
    FILE *out, char *err, size_t errlen)
{
	struct passwd	*pw;
	char		 cur[1024], dst[1024], why[1024];
	char		*old = NULL, *text = NULL;
	int		 changed, r, rc = -1;

	if (strlen(mountpoint) > 900) {
		snprintf(err, errlen, "mount point path too long");
		return -1;
	}
	snprintf(dst, sizeof(dst), "%s/%s/main", mountpoint, major);
	r = bootfile_read(conf, &old, err, errlen);
	if (r == 1)
		snprintf(err, errlen, "%s does not exist; is postgresql-%s "
		    "installed?", conf, major);
	if (r != 0)
		return -1;
	if (bootfile_conf_get(old, "data_directory", cur, sizeof(cur)) == -1) {
		snprintf(err, errlen, "%s sets no data_directory; this is not "
		    "a Debian cluster configuration", conf);
		goto out;
	}
	if (strcmp(cur, dst) == 0) {
		fprintf(out, "datadir: PostgreSQL already uses %s\n", dst);
		rc = 0;
		goto out;
	}
	pw = getpwnam("postgres");
	if (pw == NULL) {
		snprintf(err, errlen, "there is no postgres user; install "
		    "postgresql-%s", major);
		goto out;
	}
	if (pg_ctlcluster(major, "stop", why, sizeof(why)) == -1) {
		snprintf(err, errlen, "stopping PostgreSQL to move its data: "
		    "%s", why);
		goto out;
	}
	if (place_cluster(cur, dst, major, pw, out, err, errlen) == -1)
		goto out;
	text = bootfile_conf_set(old, "data_directory", dst);
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (bootfile_write(conf, text, 0644, NULL, &changed, err, errlen) ==
	    -1)
		goto out;
	if (pg_ctlcluster(major, "start", why, sizeof(why)) == -1) {
		snprintf(err, errlen, "starting PostgreSQL on %s: %s", dst,
		    why);
		goto out;
	}
	fprintf(out, "datadir: PostgreSQL now runs from %s (the old copy "
	    "stays in %s)\n", dst, cur);
	rc = 0;
out:
	free(old);
	free(text);
	return rc;
}

int
bootdisk_unit_dropin(const char *mountpoint, FILE *out, char *err,
    size_t errlen)
{
	static const char dir[] = "/etc/systemd/system/postgresql@.service.d";
	char		*reload[] = { "systemctl", "daemon-reload", NULL };
	char		 path[256], text[1200];
	struct stat	 st;
	int		 changed;

	if (stat("/run/systemd/system", &st) == -1)
		return 0;
	snprintf(path, sizeof(path), "%s/orchestrator-agent.conf", dir);
	snprintf(text, sizeof(text), "# Written by orchestrator-agent "
	    "bootstrap: the data directory is on the data disk.\n"
	    "[Unit]\nRequiresMountsFor=%s\n", mountpoint);
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (bootfile_write(path, text, 0644, NULL, &changed, err, errlen) ==
	    -1)
		return -1;
	if (changed && run(reload, NULL, 0, err, errlen) == -1)
		return -1;
	fprintf(out, "datadir: %s: %s\n", path, changed ? "PostgreSQL now "
	    "waits for the mount" : "unchanged");
	return 0;
}
