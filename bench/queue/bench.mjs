// bench.mjs - the queue benchmark driver (run by bench/queue/run.sh beside a
// throwaway PostgreSQL started by tests/pgtest.sh with PGTEST_FSYNC=on).
//
// For each system (orchestrator-agent, graphile-worker, pg-boss), on the same
// server in the same run, each in a fresh database:
//   1. burn-down: BENCH_TASKS pre-loaded no-op tasks to durable completion,
//      BENCH_RUNS times (rounds interleave the systems); tasks/s, WAL bytes
//      and dead tuples per task, worker CPU and peak RSS;
//   2. latency: BENCH_LATENCY_TASKS sequential add -> start with the worker
//      idle; then idle RSS and idle CPU over BENCH_IDLE_S seconds.
// Prints a table and writes JSON to BENCH_RESULTS_DIR.  Definitions:
// bench/README.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, execFileSync } from 'node:child_process';
import readline from 'node:readline';
import pg from 'pg';
import * as systems from './systems.mjs';

// ------------------------------------------------------------ configuration

const envInt = (k, d) => {
	const v = process.env[k];
	if (v === undefined || v === '')
		return d;
	const n = Number(v);
	if (!Number.isInteger(n) || n < 0)
		throw new Error(`${k} must be a non-negative integer, not '${v}'`);
	return n;
};

const cfg = {
	tasks: envInt('BENCH_TASKS', 100000),
	runs: envInt('BENCH_RUNS', 5),
	latencyTasks: envInt('BENCH_LATENCY_TASKS', 1000),
	latencyMaxS: envInt('BENCH_LATENCY_MAX_S', 300),
	latencyTimeoutMs: envInt('BENCH_LATENCY_TIMEOUT_MS', 5000),
	idleS: envInt('BENCH_IDLE_S', 10),
	runTimeoutS: envInt('BENCH_RUN_TIMEOUT_S', 600),
	oaConcurrency: envInt('BENCH_OA_CONCURRENCY', 16),
	systems: (process.env.BENCH_SYSTEMS || 'orchestrator-agent,graphile-worker,pg-boss')
		.split(',').map((s) => s.trim()).filter(Boolean),
	resultsDir: process.env.BENCH_RESULTS_DIR || path.resolve('bench/results'),
	agentBin: process.env.AGENT_BIN || '',
	node: process.execPath,
	gitRev: process.env.BENCH_GIT_REV || '',
	versions: {},
};
if (cfg.tasks < 1 || cfg.runs < 1)
	throw new Error('BENCH_TASKS and BENCH_RUNS must be at least 1');

const pgenv = {
	host: process.env.PGHOST, port: Number(process.env.PGPORT),
	user: process.env.PGUSER || 'postgres',
};
if (!pgenv.host || !pgenv.port)
	throw new Error('PGHOST/PGPORT unset: run me through bench/queue/run.sh (tests/pgtest.sh)');

// Environment for the workers: nothing that could point them elsewhere.
const cleanEnv = { ...process.env };
for (const k of Object.keys(cleanEnv))
	if (/^(PG|POSTGRES_|DATABASE_URL|ORCHESTRATOR_AGENT_)/.test(k))
		delete cleanEnv[k];
cfg.agentEnv = cleanEnv;
cfg.nodeEnv = cleanEnv;

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, 'Z');
const logDir = path.join(cfg.resultsDir, `queue-${stamp}.logs`);
fs.mkdirSync(logDir, { recursive: true });
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oa-bench-'));

const say = (...a) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
const now = () => performance.now();

// ------------------------------------------------------------ helpers

async function connect(database) {
	const c = new pg.Client({ host: pgenv.host, port: pgenv.port, user: pgenv.user, database });
	await c.connect();
	return c;
}

function readProc(pid) {
	try {
		const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
		const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
		const kb = (k) => {
			const m = status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'));
			return m ? Number(m[1]) : null;
		};
		return {
			rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), anonKb: kb('RssAnon'), fileKb: kb('RssFile'),
			cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK,
		};
	} catch {
		return null;
	}
}

// CPU seconds used by the PostgreSQL server: the postmaster with its reaped
// children, plus every live child.
function pgCpuS() {
	const dataDir = process.env.OA_PGDATA;
	let pm;
	try {
		pm = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
	} catch {
		return null;
	}
	let ticks = 0;
	for (const d of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(d))
			continue;
		let stat;
		try {
			stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
		} catch {
			continue;
		}
		const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
		if (Number(d) === pm)
			ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
		else if (Number(f[1]) === pm)
			ticks += Number(f[11]) + Number(f[12]);
	}
	return ticks / CLK_TCK;
}

const sortNum = (a) => [...a].sort((x, y) => x - y);
const median = (a) => {
	if (!a.length)
		return null;
	const s = sortNum(a), m = s.length >> 1;
	return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// Nearest-rank percentile.
const pct = (a, p) => {
	if (!a.length)
		return null;
	const s = sortNum(a);
	return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

// A worker process: the agent itself, or a Node peer speaking the
// ready/go/stop protocol (peer-*.mjs).
class Worker {
	constructor(spec, logFile) {
		this.spec = spec;
		this.events = [];
		this.waiters = [];
		this.log = fs.openSync(logFile, 'a');
		this.exit = null;
		this.proc = spawn(spec.cmd, spec.args, {
			env: spec.env,
			stdio: ['pipe', 'pipe', this.log],
		});
		this.pid = this.proc.pid;
		this.exited = new Promise((resolve) => {
			this.proc.on('exit', (code, signal) => {
				this.exit = { code, signal, at: now() };
				this._notify();
				resolve(this.exit);
			});
		});
		this.proc.on('error', (e) => {
			fs.writeSync(this.log, `spawn error: ${e.message}\n`);
		});
		readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
			fs.writeSync(this.log, line + '\n');
			if (!spec.handshake)
				return;
			try {
				const ev = JSON.parse(line);
				ev.at = now();
				this.events.push(ev);
				this._notify();
			} catch { /* not a protocol line */ }
		});
	}

	_notify() {
		for (const w of this.waiters.splice(0))
			w();
	}

	has(name) {
		return this.events.find((e) => e.event === name);
	}

	// Resolves with the event (or null on exit/timeout).
	async waitEvent(name, timeoutMs) {
		const end = now() + timeoutMs;
		for (;;) {
			const ev = this.has(name);
			if (ev)
				return ev;
			if (this.exit || now() >= end)
				return null;
			await Promise.race([
				new Promise((r) => this.waiters.push(r)),
				sleep(Math.max(1, end - now())),
			]);
		}
	}

	send(line) {
		if (!this.exit && this.proc.stdin.writable)
			this.proc.stdin.write(line + '\n');
	}

	async stop(timeoutMs = 20000) {
		if (!this.exit) {
			if (this.spec.handshake)
				this.send('stop');
			else
				this.proc.kill('SIGTERM');
			const t = setTimeout(() => {
				if (!this.exit)
					this.proc.kill('SIGKILL');
			}, timeoutMs);
			await this.exited;
			clearTimeout(t);
		}
		try {
			fs.closeSync(this.log);
		} catch { /* closed */ }
		return this.exit;
	}
}

// Samples a process every intervalMs: last CPU seconds, peak VmHWM and VmRSS.
function sampler(pid, intervalMs = 50) {
	const s = { first: readProc(pid), last: null, maxRssKb: 0, hwmKb: 0 };
	s.last = s.first;
	const tick = () => {
		const p = readProc(pid);
		if (!p)
			return;
		s.last = p;
		s.maxRssKb = Math.max(s.maxRssKb, p.rssKb || 0);
		s.hwmKb = Math.max(s.hwmKb, p.hwmKb || 0);
	};
	tick();
	const h = setInterval(tick, intervalMs);
	s.stop = () => {
		tick();
		clearInterval(h);
		return s;
	};
	return s;
}

async function walPos(db) {
	const r = await db.query('select pg_current_wal_lsn()::text lsn');
	return r.rows[0].lsn;
}

async function walDiff(db, a, b) {
	const r = await db.query('select pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::float8 d', [a, b]);
	return r.rows[0].d;
}

// Dead tuples left for VACUUM in the current database, summed over its
// tables (pg-boss's partitions included).  Read after the worker has
// disconnected, so every backend has flushed its statistics.
async function deadTuples(db) {
	await sleep(1500);
	await db.query('select pg_stat_clear_snapshot()');
	const r = await db.query(`select coalesce(sum(n_dead_tup), 0)::float8 dead,
		coalesce(sum(n_live_tup), 0)::float8 live from pg_stat_user_tables`);
	return r.rows[0];
}

async function dbSizeBytes(db) {
	const r = await db.query('select pg_database_size(current_database())::float8 b');
	return r.rows[0].b;
}

// ------------------------------------------------------------ phases

let admin;
let dbSeq = 0;

async function freshDb(sys, tag) {
	const dbname = `bench_${sys.short}_${tag}_${++dbSeq}`;
	await admin.query(`create database ${dbname}`);
	const db = await connect(dbname);
	const ctx = {
		cfg, env: pgenv, dbname, db, workDir,
		log: (m) => say(`  ${sys.name}: ${m}`),
	};
	return ctx;
}

async function dropDb(ctx, sys) {
	if (sys.teardown)
		await sys.teardown(ctx).catch(() => {});
	await ctx.db.end().catch(() => {});
	await admin.query(`drop database if exists ${ctx.dbname} with (force)`);
}

async function burnDown(sys, run) {
	const ctx = await freshDb(sys, `burn${run}`);
	const res = { run, tasks: cfg.tasks, ok: false };
	let w = null;
	try {
		await sys.setup(ctx);
		let t = now();
		res.preload = await sys.preload(ctx, cfg.tasks);
		res.preload_s = (now() - t) / 1000;
		if (sys.teardown)
			await sys.teardown(ctx);
		const q0 = await ctx.db.query(sys.remainingSql);
		if (q0.rows[0].n !== cfg.tasks)
			throw new Error(`preload left ${q0.rows[0].n} tasks to do, not ${cfg.tasks}`);
		await ctx.db.query('checkpoint');
		const wal0 = await walPos(ctx.db);
		const pg0 = pgCpuS();

		const logFile = path.join(logDir, `${sys.short}-burn${run}.log`);
		const spec = sys.spawn(ctx, { exitWhenEmpty: true });
		spec.env = { ...spec.env, BENCH_EXPECT: String(cfg.tasks) };
		w = new Worker(spec, logFile);
		if (w.spec.handshake && !(await w.waitEvent('ready', 30000)))
			throw new Error(`worker did not start (see ${logFile})`);
		const smp = sampler(w.pid);
		const t0 = now();
		if (w.spec.handshake)
			w.send('go');

		// Completion is the first moment the database shows no task left
		// (the poll's snapshot time).  The agent's check is an indexed EXISTS,
		// polled every 5 ms from the start.  The peers' checks scan, so they
		// are polled once a second until the worker says its handler ran for
		// every task, then every 5 ms.
		const deadline = t0 + cfg.runTimeoutS * 1000;
		let t1 = null;
		for (;;) {
			const fast = !w.spec.handshake || w.has('handled');
			const tq = now();
			const r = await ctx.db.query(sys.leftSql);
			if (!r.rows[0].left) {
				t1 = tq;
				break;
			}
			if (w.exit && !w.spec.handshake) {
				// The agent exits once nothing is left, which may be between
				// this poll's snapshot and now: look again.
				const tq2 = now();
				if (!(await ctx.db.query(sys.leftSql)).rows[0].left) {
					t1 = Math.min(w.exit.at, tq2);
					break;
				}
			}
			if (w.exit) {
				const n = (await ctx.db.query(sys.remainingSql)).rows[0].n;
				throw new Error(`worker exited (${JSON.stringify(w.exit)}) with ${n} tasks left (see ${logFile})`);
			}
			if (now() > deadline) {
				const n = (await ctx.db.query(sys.remainingSql)).rows[0].n;
				throw new Error(`timed out after ${cfg.runTimeoutS} s with ${n} tasks left`);
			}
			if (fast)
				await sleep(5);
			else
				await Promise.race([sleep(1000), w.exited, w.waitEvent('handled', 1000)]);
		}
		const wal1 = await walPos(ctx.db);
		const pg1 = pgCpuS();
		smp.stop();
		const elapsed = (t1 - t0) / 1000;
		res.seconds = elapsed;
		res.tasks_per_s = cfg.tasks / elapsed;
		const wal = await walDiff(ctx.db, wal0, wal1);
		res.wal_bytes_per_task = wal / cfg.tasks;
		res.worker_cpu_s = smp.last && smp.first ? smp.last.cpuS - smp.first.cpuS : null;
		res.db_cpu_s = pg1 !== null && pg0 !== null ? pg1 - pg0 : null;
		res.peak_rss_kb = Math.max(smp.hwmKb, smp.maxRssKb);

		// The agent exits by itself (--exit-when-empty); a peer is told to stop.
		if (!w.spec.handshake && !(await Promise.race([w.exited, sleep(60000).then(() => null)])))
			throw new Error('--exit-when-empty: the worker did not exit within 60 s of completion');
		const ex = await w.stop();
		res.worker_exit = ex && { code: ex.code, signal: ex.signal };
		if (!w.spec.handshake)
			res.exit_seconds = (ex.at - t0) / 1000;
		if (!w.spec.handshake && ex.code !== 0)
			throw new Error(`worker exited ${ex.code ?? ex.signal}`);
		const v = await sys.verify(ctx, cfg.tasks);
		res.verify = v.detail;
		if (!v.ok)
			throw new Error(`verification failed: ${v.detail}`);
		const dt = await deadTuples(ctx.db);
		res.dead_tuples_per_task = dt.dead / cfg.tasks;
		res.live_tuples_after = dt.live;
		res.db_size_bytes = await dbSizeBytes(ctx.db);
		res.ok = true;
		say(`  ${sys.name} run ${run}: ${res.tasks_per_s.toFixed(0)} tasks/s ` +
			`(${elapsed.toFixed(2)} s), WAL ${res.wal_bytes_per_task.toFixed(0)} B/task, ` +
			`dead ${res.dead_tuples_per_task.toFixed(2)}/task, peak RSS ${(res.peak_rss_kb / 1024).toFixed(1)} MB`);
	} catch (e) {
		res.error = e.message;
		say(`  ${sys.name} run ${run}: FAILED: ${e.message}`);
	} finally {
		if (w)
			await w.stop(5000);
		await dropDb(ctx, sys);
	}
	return res;
}

async function latencyAndIdle(sys) {
	const ctx = await freshDb(sys, 'lat');
	const res = { ok: false };
	let w = null;
	try {
		await sys.setup(ctx);
		await sys.latency.prepare(ctx);
		const logFile = path.join(logDir, `${sys.short}-latency.log`);
		w = new Worker(sys.spawn(ctx, { exitWhenEmpty: false }), logFile);
		if (w.spec.handshake) {
			if (!(await w.waitEvent('ready', 30000)))
				throw new Error(`worker did not start (see ${logFile})`);
			w.send('go');
			if (!(await w.waitEvent('running', 30000)))
				throw new Error(`worker did not run (see ${logFile})`);
		}
		await sleep(2000);
		if (w.exit)
			throw new Error(`worker exited (${JSON.stringify(w.exit)}) (see ${logFile})`);
		res.start_rss_kb = readProc(w.pid)?.rssKb ?? null;

		// Sequential add -> start.
		const dbMs = [], seenMs = [];
		let missed = 0;
		const end = now() + cfg.latencyMaxS * 1000;
		for (let i = 0; i < cfg.latencyTasks && now() < end; i++) {
			const ts = now();
			const key = await sys.latency.add(ctx, i);
			const until = ts + cfg.latencyTimeoutMs;
			let row = null;
			while (now() < until) {
				const r = await ctx.db.query(sys.latency.startedSql, [key]);
				if (r.rows.length) {
					row = r.rows[0];
					break;
				}
				await sleep(1);
			}
			if (!row) {
				missed++;
				if (w.exit)
					throw new Error(`worker exited during the latency test (see ${logFile})`);
				continue;
			}
			seenMs.push(now() - ts);
			dbMs.push(row.ms);
		}
		res.samples = dbMs.length;
		res.missed = missed;
		res.truncated = dbMs.length + missed < cfg.latencyTasks;
		res.p50_ms = pct(dbMs, 50);
		res.p99_ms = pct(dbMs, 99);
		res.max_ms = pct(dbMs, 100);
		res.observed_p50_ms = pct(seenMs, 50);
		res.observed_p99_ms = pct(seenMs, 99);
		res.over_10ms = dbMs.filter((x) => x > 10).length;
		res.samples_ms = dbMs.map((x) => Math.round(x * 1000) / 1000);
		res.observed_ms = seenMs.map((x) => Math.round(x * 1000) / 1000);
		say(`  ${sys.name}: latency p50 ${res.p50_ms?.toFixed(2)} ms, p99 ${res.p99_ms?.toFixed(2)} ms ` +
			`(${res.samples} samples, ${res.over_10ms} over 10 ms${missed ? `, ${missed} timed out` : ''}` +
			`${res.truncated ? `, stopped at the ${cfg.latencyMaxS} s limit` : ''})`);

		// Idle: let in-flight completions settle, then measure.
		await sleep(2000);
		const c0 = readProc(w.pid), pg0 = pgCpuS(), t0 = now();
		await sleep(cfg.idleS * 1000);
		const c1 = readProc(w.pid), pg1 = pgCpuS(), secs = (now() - t0) / 1000;
		if (!c0 || !c1 || w.exit)
			throw new Error(`worker exited while idle (see ${logFile})`);
		res.idle_seconds = secs;
		res.idle_cpu_pct = 100 * (c1.cpuS - c0.cpuS) / secs;
		res.idle_db_cpu_pct = pg0 !== null && pg1 !== null ? 100 * (pg1 - pg0) / secs : null;
		res.idle_rss_kb = c1.rssKb;
		res.idle_rss_anon_kb = c1.anonKb;
		res.idle_rss_file_kb = c1.fileKb;
		res.idle_hwm_kb = c1.hwmKb;
		res.ok = true;
		say(`  ${sys.name}: idle RSS ${(res.idle_rss_kb / 1024).toFixed(1)} MB, ` +
			`idle CPU ${res.idle_cpu_pct.toFixed(2)} % (server ${res.idle_db_cpu_pct?.toFixed(2)} %)`);
	} catch (e) {
		res.error = e.message;
		say(`  ${sys.name} latency/idle: FAILED: ${e.message}`);
	} finally {
		if (w)
			await w.stop(10000);
		await dropDb(ctx, sys);
	}
	return res;
}

// ------------------------------------------------------------ report

function summarize(name, r) {
	const ok = r.burn.filter((x) => x.ok);
	const s = { name, version: r.version, unavailable: r.unavailable || null,
		runs_ok: ok.length, runs: r.burn.length };
	if (ok.length) {
		const tps = ok.map((x) => x.tasks_per_s);
		s.tasks_per_s = { median: median(tps), min: Math.min(...tps), max: Math.max(...tps) };
		s.wal_bytes_per_task = median(ok.map((x) => x.wal_bytes_per_task));
		s.dead_tuples_per_task = median(ok.map((x) => x.dead_tuples_per_task));
		s.peak_rss_kb = median(ok.map((x) => x.peak_rss_kb));
		s.worker_cpu_ms_per_1k = median(ok.filter((x) => x.worker_cpu_s !== null)
			.map((x) => 1000 * x.worker_cpu_s / x.tasks * 1000));
		s.db_cpu_ms_per_1k = median(ok.filter((x) => x.db_cpu_s !== null)
			.map((x) => 1000 * x.db_cpu_s / x.tasks * 1000));
	}
	const l = r.latency;
	if (l && l.ok) {
		Object.assign(s, {
			latency_p50_ms: l.p50_ms, latency_p99_ms: l.p99_ms, latency_samples: l.samples,
			latency_over_10ms: l.over_10ms, latency_missed: l.missed,
			observed_p50_ms: l.observed_p50_ms, observed_p99_ms: l.observed_p99_ms,
			idle_rss_kb: l.idle_rss_kb, idle_rss_anon_kb: l.idle_rss_anon_kb,
			idle_rss_file_kb: l.idle_rss_file_kb, idle_cpu_pct: l.idle_cpu_pct, idle_db_cpu_pct: l.idle_db_cpu_pct,
		});
	}
	return s;
}

function table(sum) {
	const ours = sum.find((s) => s.name === 'orchestrator-agent');
	const peers = sum.filter((s) => s.name !== 'orchestrator-agent');
	const f = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v)) ? '-' : v.toFixed(d);
	const mb = (kb) => (kb === null || kb === undefined) ? '-' : (kb / 1024).toFixed(1);
	const bestOf = (get, hi) => {
		const v = peers.map(get).filter((x) => x !== null && x !== undefined);
		return v.length ? (hi ? Math.max(...v) : Math.min(...v)) : null;
	};
	const ratio = (get, hi) => {
		const b = bestOf(get, hi), o = ours ? get(ours) : null;
		return (b && o !== null && o !== undefined) ? `${(o / b).toFixed(2)}x` : '-';
	};
	const rows = [
		['burn-down tasks/s (median)', (s) => f(s.tasks_per_s?.median), (s) => s.tasks_per_s?.median, true, '>= 2x'],
		['  min - max', (s) => s.tasks_per_s ? `${f(s.tasks_per_s.min)} - ${f(s.tasks_per_s.max)}` : '-'],
		['  runs ok', (s) => `${s.runs_ok}/${s.runs}`],
		['add->start p50 ms (DB)', (s) => f(s.latency_p50_ms, 2), (s) => s.latency_p50_ms, false, '<= 2 ms'],
		['add->start p99 ms (DB)', (s) => f(s.latency_p99_ms, 2), (s) => s.latency_p99_ms, false, '<= 10 ms'],
		['  observed p50/p99 ms', (s) => s.observed_p50_ms !== undefined ? `${f(s.observed_p50_ms, 1)}/${f(s.observed_p99_ms, 1)}` : '-'],
		['  samples / over 10 ms / lost', (s) => s.latency_samples !== undefined
			? `${s.latency_samples}/${s.latency_over_10ms}/${s.latency_missed}` : '-'],
		['idle RSS MB', (s) => mb(s.idle_rss_kb), (s) => s.idle_rss_kb, false, '<= 8 MB'],
		['  anonymous / file-backed MB', (s) => s.idle_rss_kb !== undefined
			? `${mb(s.idle_rss_anon_kb)}/${mb(s.idle_rss_file_kb)}` : '-'],
		['idle CPU % (worker)', (s) => f(s.idle_cpu_pct, 2), (s) => s.idle_cpu_pct, false],
		['idle CPU % (server)', (s) => f(s.idle_db_cpu_pct, 2), (s) => s.idle_db_cpu_pct, false],
		['peak RSS MB under load', (s) => mb(s.peak_rss_kb), (s) => s.peak_rss_kb, false],
		['worker CPU ms / 1k tasks', (s) => f(s.worker_cpu_ms_per_1k), (s) => s.worker_cpu_ms_per_1k, false],
		['server CPU ms / 1k tasks', (s) => f(s.db_cpu_ms_per_1k), (s) => s.db_cpu_ms_per_1k, false],
		['WAL bytes / task', (s) => f(s.wal_bytes_per_task), (s) => s.wal_bytes_per_task, false],
		['dead tuples / task', (s) => f(s.dead_tuples_per_task, 2), (s) => s.dead_tuples_per_task, false],
	];
	const head = ['metric', ...sum.map((s) => s.name), 'ours / best peer', 'target'];
	const body = rows.map(([label, show, get, hi, target]) => [
		label,
		...sum.map((s) => s.unavailable ? (label.startsWith('burn') ? 'n/a' : '') : show(s)),
		get && ours && !ours.unavailable ? ratio(get, hi) : '',
		target || '',
	]);
	const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
	const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
	const out = [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)];
	out.push('ratio: ours / best peer, the best being the highest tasks/s and the lowest of the rest');
	for (const s of sum)
		if (s.unavailable)
			out.push(s.unavailable);
	return out.join('\n');
}

// ------------------------------------------------------------ main

async function machine() {
	const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
	let debian = '';
	try {
		debian = fs.readFileSync('/etc/debian_version', 'utf8').trim();
	} catch { /* not Debian */ }
	const v = await admin.query('select version() v');
	const settings = await admin.query(`select name, setting from pg_settings where name in
		('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'autovacuum',
		 'max_wal_size', 'checkpoint_timeout', 'wal_level', 'max_connections')`);
	return {
		cpu: cpu ? cpu[1] : os.arch(), cores: os.cpus().length,
		mem_gb: +(os.totalmem() / 2 ** 30).toFixed(1), kernel: os.release(), debian,
		postgres: v.rows[0].v,
		settings: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])),
		node: process.version,
	};
}

async function main() {
	for (const p of ['graphile-worker', 'pg-boss', 'pg'])
		cfg.versions[p] = JSON.parse(fs.readFileSync(
			path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules', p, 'package.json'),
			'utf8')).version;
	admin = await connect('postgres');
	// One server for everything; autovacuum off so dead tuples are what the
	// queue left behind and no vacuum runs into a measurement.
	await admin.query('alter system set autovacuum = off');
	await admin.query('select pg_reload_conf()');
	await sleep(200);
	const info = await machine();
	say(`PostgreSQL: ${info.postgres.split(',')[0]}; fsync=${info.settings.fsync} ` +
		`synchronous_commit=${info.settings.synchronous_commit} full_page_writes=${info.settings.full_page_writes} ` +
		`autovacuum=${info.settings.autovacuum}`);
	say(`${cfg.tasks} tasks x ${cfg.runs} runs; latency ${cfg.latencyTasks} tasks; idle ${cfg.idleS} s; ` +
		`agent ${cfg.agentBin}${cfg.gitRev ? ` (${cfg.gitRev})` : ''}`);

	const chosen = [];
	for (const name of cfg.systems) {
		const sys = systems.all.find((s) => s.name === name);
		if (!sys)
			throw new Error(`unknown system '${name}' in BENCH_SYSTEMS`);
		const why = sys.probe(cfg);
		chosen.push({ sys, unavailable: why, version: sys.version });
		say(why || `${name} ${sys.version || ''}`);
	}
	const results = Object.fromEntries(chosen.map((c) => [c.sys.name,
		{ version: c.version, unavailable: c.unavailable, burn: [], latency: null }]));
	const live = chosen.filter((c) => !c.unavailable);

	for (let run = 1; run <= cfg.runs; run++) {
		say(`burn-down round ${run}/${cfg.runs}`);
		for (const { sys } of live)
			results[sys.name].burn.push(await burnDown(sys, run));
	}
	say('latency and idle');
	for (const { sys } of live)
		results[sys.name].latency = await latencyAndIdle(sys);

	const summary = chosen.map((c) => summarize(c.sys.name, results[c.sys.name]));
	const out = {
		benchmark: 'queue', date: new Date().toISOString(), agent_git_rev: cfg.gitRev,
		config: {
			tasks: cfg.tasks, runs: cfg.runs, latency_tasks: cfg.latencyTasks,
			latency_max_s: cfg.latencyMaxS, idle_s: cfg.idleS, oa_concurrency: cfg.oaConcurrency,
			agent_bin: cfg.agentBin, versions: cfg.versions,
		},
		machine: info, summary, results,
	};
	const file = path.join(cfg.resultsDir, `queue-${stamp}.json`);
	fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
	fs.copyFileSync(file, path.join(cfg.resultsDir, 'queue-latest.json'));
	console.log('\n' + table(summary) + '\n');
	say(`results: ${file}`);
	say(`worker logs: ${logDir}`);
	await admin.end();
	fs.rmSync(workDir, { recursive: true, force: true });
	const failed = live.some(({ sys }) => results[sys.name].burn.some((b) => !b.ok) ||
		!results[sys.name].latency?.ok);
	return failed ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e) => {
	console.error(`bench: ${e.stack || e}`);
	process.exit(1);
});
