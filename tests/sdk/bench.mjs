// Throughput of POST /v1/batch fed by Segment's Node SDK, batches of 100 (bench/tracking.sh).
// Environment: HOST, WRITE_KEY, EVENTS (default 100000), IN_FLIGHT (batches in flight, default
// 8), PEOPLE (0: every person new, two events each; N: N recurring people), RUN (an id prefix).
// Prints one JSON line: {"events", "seconds", "per_second", "failed"}.
import { Analytics } from '@segment/analytics-node';

const env = process.env;
const events = Number(env.EVENTS ?? 100000);
const window = Number(env.IN_FLIGHT ?? 8) * 100;
const people = Number(env.PEOPLE ?? 0);
const run = env.RUN ?? String(Date.now());
const analytics = new Analytics({
  writeKey: env.WRITE_KEY,
  host: env.HOST,
  flushAt: 100,
  flushInterval: 50,
  maxRetries: 0,
});
// Flow control by the SDK's own HTTP answers (its per-event callbacks are called at least
// 300 ms after delivery, a delay of the SDK's, which would throttle the run).
let answered = 0;
let failed = 0;
const waiting = [];
analytics.on('http_response', (response) => {
  answered += 1;
  if (response.status !== 200) failed += 1;
  waiting.shift()?.();
});
analytics.on('error', () => {
  failed += 1;
});
const started = performance.now();
for (let i = 0; i < events; i += 1) {
  while (i - answered * 100 >= window) {
    await new Promise((resolve) => waiting.push(resolve));
  }
  const person = people === 0 ? Math.floor(i / 2) : i % people;
  analytics.track({
    userId: `bench-${run}-${person}`,
    event: 'Order Completed',
    messageId: `${run}-${i}`,
    properties: { order_id: `ORD-${i}`, message: 'two items, the usual address', revenue: 12.5 },
  });
}
await analytics.closeAndFlush({ timeout: 60000 });
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ events, seconds, per_second: Math.round(events / seconds), failed }));
