/*
 * version.h - the agent's version, as packaging/version.sh derives it (git
 * describe, or a source tarball's VERSION).  make writes the definition into
 * the build directory, so a new commit relinks without recompiling the
 * files that print it.  Also recorded in schema_migrations, the workers
 * registry, backups' metadata and the user agents.
 */
#ifndef VERSION_H
#define VERSION_H

extern const char agent_version[];	/* "0.1.0+116.gabc..." */
/*
 * "orchestrator-agent/VERSION", the User-Agent of every HTTP request.  A
 * pointer, not an array: curl_easy_setopt's type check takes the sizeof
 * of its argument, which an array of unknown size has not.
 */
extern const char *const agent_user_agent;

#endif
