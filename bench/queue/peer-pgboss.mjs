// peer-pgboss.mjs - pg-boss 12 as a benchmark worker process.
//
// Same stdio protocol as peer-graphile.mjs (ready / go / running / handled /
// stop / stopped).  The schema and the queue are created beforehand by the
// driver (bench.mjs), as a deployment's migration step would.
//
// Configuration, from pg-boss 12's types (dist/types.d.ts): the batched
// worker, work('noop', { batchSize: 500, localConcurrency: 4,
// burstWhenBatchFull: true }) with a no-op batch handler; burstWhenBatchFull
// makes a worker fetch again at once after a full batch (without it every
// batch would be followed by a polling interval).  The queue is created with
// notify: true and the instance with useListenNotify: true, pg-boss's
// low-latency delivery; everything else is pg-boss's default (supervision,
// maintenance and monitoring on).  Overridable with BENCH_PB_BATCH,
// BENCH_PB_LOCAL_CONCURRENCY.
import readline from 'node:readline';

const { PgBoss } = await import('pg-boss');

const expect = Number(process.env.BENCH_EXPECT || 0);
const batchSize = Number(process.env.BENCH_PB_BATCH || 500);
const localConcurrency = Number(process.env.BENCH_PB_LOCAL_CONCURRENCY || 4);
let handled = 0;
let boss = null;
let stopping = false;
let emitted = false;

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function stop(code = 0) {
	if (stopping)
		return;
	stopping = true;
	try {
		if (boss)
			await boss.stop({ graceful: true, timeout: 10000 });
	} catch (e) {
		process.stderr.write(`pg-boss stop: ${e.message}\n`);
		code = 1;
	}
	emit({ event: 'stopped', handled });
	process.exit(code);
}

process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

async function go() {
	boss = new PgBoss({
		connectionString: process.env.DATABASE_URL,
		useListenNotify: true,
	});
	boss.on('error', (e) => process.stderr.write(`pg-boss error: ${e.message}\n`));
	boss.on('warning', (w) => process.stderr.write(`pg-boss warning: ${w.message}\n`));
	await boss.start();
	await boss.work('noop', { batchSize, localConcurrency, burstWhenBatchFull: true },
		async (jobs) => {
			handled += jobs.length;
			if (expect && !emitted && handled >= expect) {
				emitted = true;
				emit({ event: 'handled', n: handled });
			}
		});
	emit({ event: 'running' });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
	const cmd = line.trim();
	if (cmd === 'go' && !boss && !stopping) {
		go().catch((e) => {
			process.stderr.write(`pg-boss start: ${e.stack || e}\n`);
			process.exit(1);
		});
	} else if (cmd === 'stop') {
		stop(0);
	}
});
rl.on('close', () => stop(0));

emit({ event: 'ready' });
