/*
 * cfg_keys.h - the configuration key table's types, shared by cfg.c (the
 * reader) and cfg_keys.c (the table).  Private to those two files.
 */
#ifndef CFG_KEYS_H
#define CFG_KEYS_H

#include <stddef.h>

#include "cfg.h"

enum cfg_type { T_STR, T_INT, T_BOOL, T_ENUM };

#define F_SECRET	0x01	/* never printed */
#define F_NOFILE	0x02	/* environment only: secrets stay out of files */
#define F_CONNINFO	0x04	/* libpq conninfo or URI; printed redacted */

struct cfg_key {
	const char	*section;
	const char	*name;
	enum cfg_type	 type;
	const char	*def;
	long long	 min, max;
	const char	*choices;	/* T_ENUM: "a|b|c" */
	const char	*env_low;	/* below the file: libpq's variable */
	const char	*env;		/* above the file: the seed's variable */
	int		 flags;
	/* T_STR: a syntax check owned by the module that reads the value. */
	int		(*check)(const char *, char *why, size_t whylen);
};

/* Keys of a [handler.TYPE] section. */
enum hk_id { HK_KIND, HK_COMMAND, HK_URL, HK_TIMEOUT, HK_OUTPUT_LIMIT, HK_N };

/* The tables, indexed by enum cfg_id and enum hk_id. */
extern const struct cfg_key	cfg_keys[CFG_NKEYS];
extern const struct cfg_key	cfg_hkeys[HK_N];

#endif
