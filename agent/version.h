/* version.h - the agent's version, also recorded in schema_migrations. */
#ifndef VERSION_H
#define VERSION_H

#define AGENT_VERSION	"0.1.0"

#endif
