/*
 * bootdisk.h - the bootstrap's data disk: format it on first boot only,
 * mount it (fstab by UUID, nofail), and move the PostgreSQL cluster onto
 * it.  Every step is idempotent and prints what it did or that it was done.
 */
#ifndef BOOTDISK_H
#define BOOTDISK_H

#include <stddef.h>
#include <stdio.h>

/* Strings borrowed. */
struct bootdisk_opts {
	const char	*device;	/* block device (or image file) */
	const char	*mountpoint;	/* e.g. /mnt/pgdata */
	const char	*fstab;		/* e.g. /etc/fstab */
};

/*
 * The filesystem type on dev per blkid's low-level probe, into type ("" for
 * none).  0, or -1 with err filled (e.g. blkid missing or failing).
 */
int	 bootdisk_fs_type(const char *dev, char *type, size_t typelen,
	    char *err, size_t errlen);

/* Is a filesystem mounted exactly at path?  (mountinfo's fifth field) */
int	 bootdisk_mounted(const char *path);

/*
 * Make the data disk usable: when o->device is absent, say so and set
 * *mounted 0; otherwise make an ext4 filesystem only when blkid finds none
 * (a disk with any filesystem is never formatted), put a UUID line with
 * nofail in o->fstab and mount it at o->mountpoint (*mounted 1).  Reports
 * to out.  0, or -1 with err filled.
 */
int	 bootdisk_prepare(const struct bootdisk_opts *o, FILE *out,
	    int *mounted, char *err, size_t errlen);

/*
 * Point the Debian cluster MAJOR/main (its postgresql.conf at conf) at
 * mountpoint/MAJOR/main: a cluster already there (a disk that outlived
 * its VM) is adopted, otherwise the current data directory is copied
 * there with the cluster stopped.  data_directory is switched only after
 * a complete copy, so a failure half-way leaves the old cluster in use and
 * a re-run starts again.  Reports to out.  0, or -1 with err filled.
 */
int	 bootdisk_datadir(const char *conf, const char *major,
	    const char *mountpoint, FILE *out, char *err, size_t errlen);

/*
 * Under systemd, a postgresql@.service drop-in with RequiresMountsFor=
 * mountpoint, so that PostgreSQL never starts before the (nofail) data
 * disk is mounted.  Reports to out.  0, or -1 with err filled.
 */
int	 bootdisk_unit_dropin(const char *mountpoint, FILE *out, char *err,
	    size_t errlen);

#endif
