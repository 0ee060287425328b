// systems.mjs - how the benchmark drives each queue: schema setup, preload,
// the worker process, completion and latency queries.  See bench/README.md
// for the definitions; bench.mjs does the measuring.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);

// Connection for the Node clients: the same Unix socket the agent uses.
export function connString(env, dbname) {
	return `postgresql://${encodeURIComponent(env.user)}@/${encodeURIComponent(dbname)}` +
		`?host=${encodeURIComponent(env.host)}&port=${env.port}`;
}

function agentRun(cfg, args, opts = {}) {
	const r = spawnSync(cfg.agentBin, args, {
		encoding: 'utf8', env: cfg.agentEnv, input: opts.input,
		maxBuffer: 64 << 20, timeout: (opts.timeoutS || 600) * 1000,
	});
	return { rc: r.status, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

function agentIni(env, dbname, withWorker, concurrency) {
	let s = `[database]\nhost = ${env.host}\nport = ${env.port}\ndbname = ${dbname}\n` +
		`user = ${env.user}\nsslmode = disable\n` +
		// The benchmark's bulk statements may take longer than the default.
		`statement_timeout_ms = 0\n`;
	if (withWorker)
		s += `\n[worker]\nconcurrency = ${concurrency}\nprefetch = ${process.env.BENCH_OA_PREFETCH || 1000}\n\n[handler.noop]\nkind = noop\n`;
	return s;
}

// ---------------------------------------------------------------- ours

export const ours = {
	name: 'orchestrator-agent',
	short: 'ours',

	// Returns null when usable, else the reason it is not.
	probe(cfg) {
		if (!cfg.agentBin || !fs.existsSync(cfg.agentBin))
			return `orchestrator-agent: binary not found (${cfg.agentBin || 'AGENT_BIN unset'})`;
		const v = agentRun(cfg, ['--version']);
		if (v.rc !== 0)
			return `orchestrator-agent: ${cfg.agentBin} --version failed`;
		this.version = v.stdout.trim();
		if (agentRun(cfg, ['help', 'worker']).rc !== 0)
			return 'orchestrator-agent: worker not available';
		this.hasEnqueue = agentRun(cfg, ['help', 'enqueue']).rc === 0;
		return null;
	},

	async setup(ctx) {
		const dir = ctx.workDir;
		ctx.iniSchema = path.join(dir, `${ctx.dbname}-schema.ini`);
		ctx.iniWorker = path.join(dir, `${ctx.dbname}-worker.ini`);
		fs.writeFileSync(ctx.iniSchema, agentIni(ctx.env, ctx.dbname, false));
		fs.writeFileSync(ctx.iniWorker, agentIni(ctx.env, ctx.dbname, true, ctx.cfg.oaConcurrency));
		const r = agentRun(ctx.cfg, ['-q', '-c', ctx.iniSchema, 'schema', 'init']);
		if (r.rc !== 0)
			throw new Error(`schema init failed (${r.rc}): ${r.stderr.trim()}`);
	},

	// Bulk load with `enqueue --ndjson -` (COPY) when the agent has it, else
	// a single INSERT ... SELECT (the fallback is recorded in the results).
	async preload(ctx, n) {
		if (this.hasEnqueue) {
			const line = JSON.stringify({
				task_type: 'noop', source_repo: 'o/a', target_repo: 'o/b',
				change_event: {}, relationship_config: {},
			}) + '\n';
			const r = agentRun(ctx.cfg, ['-q', '-c', ctx.iniSchema, 'enqueue', '--ndjson', '-'],
				{ input: line.repeat(n) });
			if (r.rc === 0) {
				const c = await ctx.db.query('select count(*)::int n from tasks');
				if (c.rows[0].n === n)
					return 'enqueue --ndjson';
			}
			ctx.log(`enqueue --ndjson failed (rc ${r.rc}: ${r.stderr.trim().slice(0, 300)}); using SQL`);
			await ctx.db.query('truncate tasks cascade');
		}
		await ctx.db.query(`
			insert into tasks (task_id, skill_name, task_type, source_repo, target_repo,
			                   change_event, relationship_config)
			select 'bench-' || i, 'noop', 'noop', 'o/a', 'o/b', '{}', '{}'
			  from generate_series(1, $1::int) i`, [n]);
		return 'sql insert (fallback)';
	},

	remainingSql: `select count(*)::int n from tasks where status in ('queued', 'started')`,
	// Cheap: each EXISTS is served by a partial index on status.
	leftSql: `select exists (select 1 from tasks where status = 'queued')
		or exists (select 1 from tasks where status = 'started') as left`,

	// The agent is its own process: no ready/go handshake; spawn is the start.
	spawn(ctx, { exitWhenEmpty }) {
		const args = ['-c', ctx.iniWorker, 'worker', '--concurrency', String(ctx.cfg.oaConcurrency)];
		if (exitWhenEmpty)
			args.push('--exit-when-empty');
		return { cmd: ctx.cfg.agentBin, args, env: ctx.cfg.agentEnv, handshake: false };
	},

	async verify(ctx, n) {
		const t = await ctx.db.query(`select count(*) filter (where status = 'finished')::int fin,
			count(*)::int total from tasks`);
		const h = await ctx.db.query(`select count(*)::int n from task_history`);
		const ok = t.rows[0].fin === n && t.rows[0].total === n && h.rows[0].n === 2 * n;
		return { ok, detail: `finished ${t.rows[0].fin}/${n}, history rows ${h.rows[0].n} (want ${2 * n})` };
	},

	latency: {
		async prepare() {},
		async add(ctx, i) {
			const id = `lat-${i}`;
			await ctx.db.query(`
				insert into tasks (task_id, skill_name, task_type, source_repo, target_repo,
				                   change_event, relationship_config)
				values ($1, 'noop', 'noop', 'o/a', 'o/b', '{}', '{}')`, [id]);
			return id;
		},
		startedSql: `select (extract(epoch from started_at - created_at) * 1000)::float8 ms
			from tasks where task_id = $1 and started_at is not null`,
	},
};

// ---------------------------------------------------------------- graphile-worker

export const graphile = {
	name: 'graphile-worker',
	short: 'graphile',

	probe(cfg) {
		this.version = cfg.versions['graphile-worker'];
		return null;
	},

	async setup(ctx) {
		const { makeWorkerUtils, Logger } = await import('graphile-worker');
		const logger = new Logger(() => (level, message) => {
			if (level === 'error' || level === 'warning')
				ctx.log(`graphile-worker ${level}: ${message}`);
		});
		ctx.gw = await makeWorkerUtils({ connectionString: connString(ctx.env, ctx.dbname), logger });
		await ctx.gw.migrate();
	},

	// WorkerUtils.addJobs: graphile_worker.add_jobs(), its bulk API.
	async preload(ctx, n) {
		const chunk = 10000;
		for (let done = 0; done < n; done += chunk) {
			const k = Math.min(chunk, n - done);
			await ctx.gw.addJobs(Array.from({ length: k }, () => ({ identifier: 'noop', payload: {} })));
		}
		return 'addJobs (add_jobs)';
	},

	async teardown(ctx) {
		if (ctx.gw)
			await ctx.gw.release();
		ctx.gw = null;
	},

	remainingSql: 'select count(*)::int n from graphile_worker._private_jobs',
	leftSql: 'select exists (select 1 from graphile_worker._private_jobs) as left',

	spawn(ctx) {
		return {
			cmd: ctx.cfg.node, args: [path.join(here, 'peer-graphile.mjs')],
			env: { ...ctx.cfg.nodeEnv, DATABASE_URL: connString(ctx.env, ctx.dbname) },
			handshake: true,
		};
	},

	async verify(ctx) {
		const r = await ctx.db.query('select count(*)::int n from graphile_worker._private_jobs');
		return { ok: r.rows[0].n === 0, detail: `${r.rows[0].n} jobs left (completed jobs are deleted)` };
	},

	latency: {
		// graphile-worker deletes a job when it completes, so its claim time is
		// copied out by a trigger on the claim (locked_at set) into bench_claims.
		async prepare(ctx) {
			await ctx.db.query(`
				create table public.bench_claims (
					id bigint primary key, created_at timestamptz, locked_at timestamptz);
				create function public.bench_capture() returns trigger language plpgsql as $$
				begin
					insert into public.bench_claims values (new.id, new.created_at, new.locked_at)
					on conflict do nothing;
					return null;
				end $$;
				create trigger bench_capture after update of locked_at
					on graphile_worker._private_jobs for each row
					when (old.locked_at is null and new.locked_at is not null)
					execute function public.bench_capture();`);
		},
		async add(ctx) {
			const r = await ctx.db.query(`select id from graphile_worker.add_job('noop', '{}'::json)`);
			return r.rows[0].id;
		},
		startedSql: `select (extract(epoch from locked_at - created_at) * 1000)::float8 ms
			from public.bench_claims where id = $1`,
	},
};

// ---------------------------------------------------------------- pg-boss

export const pgboss = {
	name: 'pg-boss',
	short: 'pgboss',

	probe(cfg) {
		this.version = cfg.versions['pg-boss'];
		return null;
	},

	// Schema and queue from a short-lived client instance (no supervision or
	// scheduling), kept for preload and the latency test's send().
	async setup(ctx) {
		const { PgBoss } = await import('pg-boss');
		ctx.boss = new PgBoss({
			connectionString: connString(ctx.env, ctx.dbname),
			supervise: false, schedule: false, max: 4,
		});
		ctx.boss.on('error', (e) => ctx.log(`pg-boss (driver) error: ${e.message}`));
		ctx.boss.on('warning', (w) => ctx.log(`pg-boss (driver) warning: ${w.message}`));
		await ctx.boss.start();
		await ctx.boss.createQueue('noop', { notify: true });
	},

	async preload(ctx, n) {
		const chunk = 10000;
		for (let done = 0; done < n; done += chunk) {
			const k = Math.min(chunk, n - done);
			await ctx.boss.insert('noop', Array.from({ length: k }, () => ({ data: {} })));
		}
		return 'insert()';
	},

	async teardown(ctx) {
		if (ctx.boss)
			await ctx.boss.stop({ graceful: false, close: true });
		ctx.boss = null;
	},

	remainingSql: `select count(*)::int n from pgboss.job where name = 'noop' and state < 'completed'`,
	leftSql: `select exists (select 1 from pgboss.job where name = 'noop' and state < 'completed') as left`,

	spawn(ctx) {
		return {
			cmd: ctx.cfg.node, args: [path.join(here, 'peer-pgboss.mjs')],
			env: { ...ctx.cfg.nodeEnv, DATABASE_URL: connString(ctx.env, ctx.dbname) },
			handshake: true,
		};
	},

	async verify(ctx, n) {
		const r = await ctx.db.query(`select count(*) filter (where state = 'completed')::int c,
			count(*)::int total from pgboss.job where name = 'noop'`);
		return { ok: r.rows[0].c === n && r.rows[0].total === n,
			detail: `completed ${r.rows[0].c}/${n}` };
	},

	latency: {
		async prepare() {},
		async add(ctx) {
			return ctx.boss.send('noop', {});
		},
		startedSql: `select (extract(epoch from started_on - created_on) * 1000)::float8 ms
			from pgboss.job where name = 'noop' and id = $1 and started_on is not null`,
	},
};

export const all = [ours, graphile, pgboss];

