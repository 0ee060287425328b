/*
 * doctor_env.c - checks of what the agent stands on before the database:
 * the configuration, the Secret Manager password, Google credentials and
 * the clock (tokens and signed requests fail when it is off).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cfg.h"
#include "doctor.h"
#include "secret.h"
#include "store.h"

static int
is_gcs_target(const struct cfg *cfg)
{
	return strncmp(cfg_str(cfg, CFG_B_TARGET), "gs://", 5) == 0;
}

static int
emulated(void)
{
	const char *e = getenv("STORAGE_EMULATOR_HOST");

	return e != NULL && *e != '\0';
}

/* An auth set up like db.c and store.c do; caller frees (auth_free). */
static struct auth *
new_auth(const struct cfg *cfg, int no_auth, char *err, size_t errlen)
{
	struct auth_opts ao;

	memset(&ao, 0, sizeof(ao));
	ao.no_auth = no_auth;
	if (*cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE) != '\0')
		ao.credentials_file = cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE);
	ao.metadata_host = cfg_str(cfg, CFG_GCS_METADATA_HOST);
	return auth_new(&ao, err, errlen);
}

static void
check_config(struct dr_ctx *ctx, struct dr_result *r)
{
	const struct cfg	*cfg = ctx->cfg;
	const char		*path;
	size_t			 nh;

	if (cfg == NULL) {
		dr_metric(r, "orchestrator_config_valid", "", 0);
		dr_set(r, DR_CRIT, "the configuration does not load");
		dr_detail(r, "%s", ctx->cfg_err);
		dr_fix(r, "correct the line named above, then run "
		    "'orchestrator-agent config check'");
		return;
	}
	dr_metric(r, "orchestrator_config_valid", "", 1);
	path = cfg_path(cfg);
	nh = cfg_handler_count(cfg);
	dr_set(r, DR_OK, "valid (%s), %zu task handler%s", path != NULL ?
	    path : "no file: built-in defaults and environment", nh,
	    nh == 1 ? "" : "s");
}

static void
check_secrets(struct dr_ctx *ctx, struct dr_result *r)
{
	const struct cfg	*cfg = ctx->cfg;
	const char		*name = cfg_str(cfg, CFG_DB_PASSWORD_SECRET);
	struct auth		*auth = NULL;
	char			*value = NULL, err[700];

	if (*name == '\0') {
		dr_set(r, DR_SKIPPED, "no [database] password_secret "
		    "configured");
		return;
	}
	auth = new_auth(cfg, 0, err, sizeof(err));
	if (auth == NULL || secret_access(auth, cfg_str(cfg,
	    CFG_GCS_SECRETMANAGER_ENDPOINT), name, &value, err,
	    sizeof(err)) == -1) {
		dr_set(r, DR_CRIT, "cannot read the database password from "
		    "Secret Manager");
		dr_detail(r, "%s: %s", name, err);
		dr_fix(r, "grant roles/secretmanager.secretAccessor on the "
		    "secret to this VM's service account, and check that a "
		    "version is enabled (gcloud secrets versions list)");
		goto out;
	}
	dr_set(r, DR_OK, "database password readable from %s", name);
out:
	secret_free(value);
	auth_free(auth);
}

static void
check_credentials(struct dr_ctx *ctx, struct dr_result *r)
{
	const struct cfg	*cfg = ctx->cfg;
	struct auth		*auth = NULL;
	const char		*token;
	char			 err[700];
	int			 need_secret;

	need_secret = *cfg_str(cfg, CFG_DB_PASSWORD_SECRET) != '\0';
	if (!is_gcs_target(cfg) && !need_secret) {
		dr_set(r, DR_SKIPPED, "no Google service configured (local "
		    "backup target, no password_secret)");
		return;
	}
	if (emulated() && !need_secret) {
		dr_set(r, DR_OK, "storage emulator at %s: no credentials "
		    "needed", getenv("STORAGE_EMULATOR_HOST"));
		return;
	}
	auth = new_auth(cfg, 0, err, sizeof(err));
	if (auth == NULL || auth_token(auth, &token, err, sizeof(err)) == -1) {
		dr_set(r, DR_CRIT, "cannot obtain a Google access token");
		dr_detail(r, "%s", err);
		dr_fix(r, "on GCE check the VM's service account and scopes "
		    "(metadata server %s); elsewhere set [gcs] credentials_file "
		    "to a service-account key (mode 0600)",
		    cfg_str(cfg, CFG_GCS_METADATA_HOST));
		goto out;
	}
	dr_set(r, DR_OK, "access token obtained (%s)", auth_kind(auth));
out:
	auth_free(auth);
}

static void
check_clock(struct dr_ctx *ctx, struct dr_result *r)
{
	const struct cfg	*cfg = ctx->cfg;
	struct store		*st;
	unsigned		 granted;
	time_t			 server, now;
	double			 skew;
	char			 err[700];

	if (!is_gcs_target(cfg)) {
		dr_set(r, DR_SKIPPED, "local backup target: no storage "
		    "service to compare the clock with");
		return;
	}
	st = dr_need_store(ctx, r);
	if (st == NULL)
		return;
	if (store_probe(st, &granted, &server, err, sizeof(err)) == -1 &&
	    server == 0) {
		dr_set(r, DR_UNKNOWN, "the storage service did not answer");
		dr_detail(r, "%s", err);
		dr_fix(r, "see the backup.bucket check");
		return;
	}
	if (server == 0) {
		dr_set(r, DR_UNKNOWN, "the storage service sent no Date "
		    "header");
		return;
	}
	now = time(NULL);
	skew = difftime(now, server);
	dr_metric(r, "orchestrator_clock_skew_seconds", "", skew);
	r->status = dr_level(skew < 0 ? -skew : skew,
	    (double)cfg_int(cfg, CFG_D_SKEW_WARN_S),
	    (double)cfg_int(cfg, CFG_D_SKEW_CRIT_S));
	dr_set(r, r->status, "this host's clock is %+.0f s from the storage "
	    "service's", skew);
	if (r->status != DR_OK)
		dr_fix(r, "start time synchronisation (systemctl status "
		    "systemd-timesyncd or chrony); on GCE use "
		    "metadata.google.internal as the NTP server");
}

const struct dr_check dr_env_checks[] = {
	{ "config", "configuration", check_config, 0 },
	{ "secrets", "Secret Manager password", check_secrets, 1 },
	{ "credentials", "Google credentials", check_credentials, 1 },
	{ "clock", "clock skew", check_clock, 1 },
};
const size_t dr_env_nchecks = sizeof(dr_env_checks) /
    sizeof(dr_env_checks[0]);
