// Postmark's official Node.js client (npm `postmark`) sending the load messages to the simulator in
// batches of 500 with ServerClient.sendEmailBatch, one batch at a time, as the Rust side does.
// Usage: node send.mjs <simulator URL> <server token> <messages.json>
// Prints `RESULT {...}` with wall seconds and the CPU seconds spent while sending. One batch goes out
// first, unmeasured, so that the measured ones run warm (compiled by the JIT, connection open), as a
// long-lived sender runs and as the Rust clients, compiled ahead of time, run from the start.
import { readFileSync } from "node:fs";
import postmark from "postmark";

const [baseUrl, token, file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node send.mjs <simulator URL> <server token> <messages.json>");
  process.exit(2);
}
const url = new URL(baseUrl);
const client = new postmark.ServerClient(token, {
  requestHost: url.host,
  useHttps: url.protocol === "https:",
  timeout: 60,
});
const messages = JSON.parse(readFileSync(file, "utf8"));

await client.sendEmailBatch(messages.slice(0, 500));

const cpuBefore = process.cpuUsage();
const started = process.hrtime.bigint();
let accepted = 0;
let calls = 0;
for (let i = 0; i < messages.length; i += 500) {
  const answers = await client.sendEmailBatch(messages.slice(i, i + 500));
  calls += 1;
  accepted += answers.filter((a) => a.ErrorCode === 0).length;
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuBefore);
console.log(
  `postmark (Node.js): ${messages.length} messages, ${accepted} accepted, ${calls} calls, ${seconds.toFixed(2)} s`,
);
console.log(
  "RESULT " +
    JSON.stringify({
      client: "postmark-node",
      messages: messages.length,
      accepted,
      calls,
      seconds,
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
    }),
);
