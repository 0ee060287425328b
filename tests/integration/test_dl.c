/*
 * test_dl.c - libcurl, libmicrohttpd and libzstd are loaded only when
 * first needed (agent/dl.c), libsystemd not at all: an idle worker maps
 * none of them, the features that need one map it, and a library that
 * does not load or lacks a function stops the agent with one line naming
 * the package (exit 72), never a crash.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <ini.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static const char *const lazy[] = {
	"libcurl.so", "libmicrohttpd.so", "libzstd.so", "libsystemd.so",
};

/* Which of lazy[] pid maps, as a bit set. */
static unsigned
mapped(int pid)
{
	char		 path[64], *maps;
	unsigned	 set = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = read_file(path);
	cr_assert(maps != NULL, "%s", path);
	for (size_t i = 0; i < sizeof(lazy) / sizeof(lazy[0]); i++)
		if (strstr(maps, lazy[i]) != NULL)
			set |= 1u << i;
	free(maps);
	return set;
}

/* Start a worker with cfg and args, wait until it has registered. */
static int
idle_worker(const char *db, PGconn *c, const char *cfg, const char *arg1,
    const char *arg2)
{
	int	pid;

	pid = spawn_agent(db_env_cfg(db, cfg), NULL,
	    (const char *[]){ "worker", arg1, arg2, NULL });
	cr_assert(wait_value(c, "SELECT count(*) FROM workers", "1", 15000),
	    "the worker did not register");
	return pid;
}

static void
stop(int pid)
{
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
}

Test(dl, libraries_load_only_when_needed, .timeout = 90)
{
	static const struct {
		const char	*ini;
		int		 health;
		unsigned	 want;	/* bits of lazy[] */
		unsigned	 check;	/* the bits that must be as in want */
	} cases[] = {
		{ "[handler.noop]\nkind = noop\n", 0, 0, 0xf },
		{ "[handler.noop]\nkind = noop\n", 1, 1u << 1, 0xf },
		/* libcurl may bring libzstd itself (Content-Encoding). */
		{ "[handler.web]\nkind = http\nurl = http://127.0.0.1:1/x\n", 0,
		    1u << 0, 0xb },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char	*db = migrated_db(), *cfg = write_temp(cases[i].ini, 0600);
		char	 listen[32];
		PGconn	*c = db_open(db);
		int	 pid;
		unsigned got;

		snprintf(listen, sizeof(listen), "127.0.0.1:%d", free_port());
		pid = idle_worker(db, c, cfg, cases[i].health ?
		    "--health-listen" : NULL, listen);
		got = mapped(pid);
		cr_expect_eq(got & cases[i].check, cases[i].want, "case %zu: "
		    "mapped %#x, want %#x of %#x (curl, mhd, zstd, systemd)",
		    i, got, cases[i].want, cases[i].check);
		stop(pid);
		PQfinish(c);
		unlink(cfg);
		free(cfg);
		free(db);
	}
}

/*
 * A stand-in libmicrohttpd.so.12 found first through LD_LIBRARY_PATH: a
 * file that is no library, and a real library (libinih) without
 * libmicrohttpd's functions.
 */
Test(dl, broken_library_names_the_package, .timeout = 60)
{
	char	 dir[] = "/tmp/oa-dl-XXXXXX", lib[96], envlib[128], cmd[512];
	char	 listen[32], *cfg = write_temp("[handler.noop]\nkind = noop\n",
	    0600);
	const char *env[] = { envlib, NULL };
	Dl_info	 di;
	FILE	*f;
	struct run r;

	cr_assert(mkdtemp(dir) != NULL);
	snprintf(lib, sizeof(lib), "%s/libmicrohttpd.so.12", dir);
	snprintf(envlib, sizeof(envlib), "LD_LIBRARY_PATH=%s", dir);
	cr_assert(dladdr((void *)ini_parse, &di) != 0 && di.dli_fname != NULL);
	for (int lacks = 0; lacks < 2; lacks++) {
		if (lacks) {
			snprintf(cmd, sizeof(cmd), "cp '%s' '%s'",
			    di.dli_fname, lib);
			cr_assert(system(cmd) == 0, "%s", cmd);
		} else {
			f = fopen(lib, "w");
			cr_assert(f != NULL);
			fputs("not a shared object\n", f);
			fclose(f);
		}
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", free_port());
		run_agent(&r, env, NULL, (const char *[]){ "-c", cfg, "worker",
		    "--health-listen", listen, NULL });
		cr_expect_eq(r.status, 72, "case %d: exit %d: %s", lacks,
		    r.status, r.err);
		cr_expect(strstr(r.err, "dl: libmicrohttpd.so.12 ") != NULL &&
		    strstr(r.err, "install the package libmicrohttpd12") != NULL,
		    "case %d: %s", lacks, r.err);
		cr_expect(strstr(r.err, lacks ? "lacks MHD_start_daemon_va" :
		    "does not load") != NULL, "case %d: %s", lacks, r.err);
		cr_expect(strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
		    "case %d: not one line: %s", lacks, r.err);
		run_free(&r);
	}
	unlink(lib);
	rmdir(dir);
	unlink(cfg);
	free(cfg);
}
