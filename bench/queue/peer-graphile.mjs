// peer-graphile.mjs - graphile-worker 0.18 as a benchmark worker process.
//
// Started by bench.mjs with DATABASE_URL set.  Protocol, one JSON object a
// line on stdout, plain words a line on stdin:
//   -> {"event":"ready"}        modules loaded; nothing touches the database yet
//   <- go                       start the runner (the burn-down clock starts here)
//   -> {"event":"running"}      run() resolved
//   -> {"event":"handled","n"}  the handler ran BENCH_EXPECT times (when set)
//   <- stop                     graceful shutdown (also on SIGTERM / stdin EOF)
//   -> {"event":"stopped"}
//
// The configuration is the one graphile-worker's own performance page uses
// for its numbers ("Performance" in the docs, and the WorkerOptions comments
// in dist/index.d.ts): concurrentJobs 24, maxPoolSize 25, localQueue.size
// 500, completeJobBatchDelay 0, failJobBatchDelay 0, NO_LOG_SUCCESS.  The
// task is a no-op.  Overridable for experiments with BENCH_GW_CONCURRENCY,
// BENCH_GW_LOCAL_QUEUE.
import readline from 'node:readline';

process.env.NO_LOG_SUCCESS = '1';
const { run, Logger } = await import('graphile-worker');

const expect = Number(process.env.BENCH_EXPECT || 0);
const concurrentJobs = Number(process.env.BENCH_GW_CONCURRENCY || 24);
const localQueueSize = Number(process.env.BENCH_GW_LOCAL_QUEUE || 500);
let handled = 0;
let runner = null;
let stopping = false;

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Warnings and errors only: per-job info lines would be the benchmark.
const logger = new Logger(() => (level, message) => {
	if (level === 'error' || level === 'warning')
		process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

const options = {
	noHandleSignals: true,
	logger,
	crontab: '',
	taskList: {
		noop: async () => {
			if (++handled === expect)
				emit({ event: 'handled', n: handled });
		},
	},
	preset: {
		worker: {
			connectionString: process.env.DATABASE_URL,
			concurrentJobs,
			maxPoolSize: concurrentJobs + 1,
			localQueue: { size: localQueueSize },
			completeJobBatchDelay: 0,
			failJobBatchDelay: 0,
		},
	},
};

async function stop(code = 0) {
	if (stopping)
		return;
	stopping = true;
	try {
		if (runner)
			await runner.stop();
	} catch (e) {
		process.stderr.write(`graphile-worker stop: ${e.message}\n`);
		code = 1;
	}
	emit({ event: 'stopped', handled });
	process.exit(code);
}

process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
	const cmd = line.trim();
	if (cmd === 'go' && !runner && !stopping) {
		try {
			runner = await run(options);
			emit({ event: 'running' });
			runner.promise.catch((e) => {
				process.stderr.write(`graphile-worker runner: ${e.message}\n`);
				stop(1);
			});
		} catch (e) {
			process.stderr.write(`graphile-worker run: ${e.stack || e}\n`);
			process.exit(1);
		}
	} else if (cmd === 'stop') {
		stop(0);
	}
});
rl.on('close', () => stop(0));

emit({ event: 'ready' });
