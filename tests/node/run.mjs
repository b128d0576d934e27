// Drives a threadline server with the official openai Node SDK (pinned in
// package.json): one polling run and one streaming run on a scripted model.
//
//   THREADLINE_BASE_URL=http://127.0.0.1:8000/v1 THREADLINE_API_KEY=sk-... node run.mjs
//
// The server must run with THREADLINE_MODEL_BACKEND=scripted. Exits 0 when every
// check holds, 1 (with the reason on stderr) otherwise.

import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.THREADLINE_BASE_URL;
const apiKey = process.env.THREADLINE_API_KEY ?? 'anything-in-dev-mode';
if (!baseURL) {
  console.error('set THREADLINE_BASE_URL (the server\'s /v1 URL)');
  process.exit(2);
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });

function script(text, chunks) {
  // Paced: pieces the model sends together may go out as one delta.
  return JSON.stringify({ scripted: [{ text, chunks, token_delay: 0.01 }] });
}

function textOf(message) {
  return message.content
    .filter((part) => part.type === 'text')
    .map((part) => part.text.value)
    .join('');
}

async function latestAssistantText(threadId, runId) {
  const page = await client.beta.threads.messages.list(threadId, { run_id: runId });
  const mine = page.data.filter((m) => m.role === 'assistant');
  assert.equal(mine.length, 1, `one assistant message for ${runId}`);
  assert.equal(mine[0].status, 'completed');
  return textOf(mine[0]);
}

async function main() {
  const assistant = await client.beta.assistants.create({
    model: 'gpt-4o-mini',
    name: 'node-sdk',
    instructions: 'Be brief.',
  });
  assert.equal(assistant.object, 'assistant');
  assert.match(assistant.id, /^asst_/);

  const pollText = 'Polled from Node.';
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: script(pollText, 2) }],
  });
  assert.equal(thread.object, 'thread');

  // --- a polling run ---------------------------------------------------------
  const polled = await client.beta.threads.runs.createAndPoll(
    thread.id,
    { assistant_id: assistant.id },
    { pollIntervalMs: 50 },
  );
  assert.equal(polled.object, 'thread.run');
  assert.equal(polled.status, 'completed', `polling run: ${JSON.stringify(polled.last_error)}`);
  assert.equal(polled.thread_id, thread.id);
  assert.equal(polled.assistant_id, assistant.id);
  assert.equal(typeof polled.completed_at, 'number');
  assert.ok(polled.usage && polled.usage.total_tokens > 0, 'polling run has usage');
  assert.equal(await latestAssistantText(thread.id, polled.id), pollText);

  const steps = await client.beta.threads.runs.steps.list(thread.id, polled.id);
  assert.equal(steps.data.length, 1);
  assert.equal(steps.data[0].type, 'message_creation');
  assert.equal(steps.data[0].status, 'completed');

  // --- a streaming run -------------------------------------------------------
  const streamText = 'Streamed from Node, in pieces.';
  await client.beta.threads.messages.create(thread.id, {
    role: 'user',
    content: script(streamText, 4),
  });
  const deltas = [];
  const events = [];
  let created = null;
  const stream = client.beta.threads.runs
    .stream(thread.id, { assistant_id: assistant.id })
    .on('event', (event) => events.push(event.event))
    .on('runStepCreated', (step) => {
      created = step;
    })
    .on('textDelta', (delta) => deltas.push(delta.value));
  const run = await stream.finalRun();
  const messages = await stream.finalMessages();

  assert.equal(run.object, 'thread.run');
  assert.equal(run.status, 'completed', `streaming run: ${JSON.stringify(run.last_error)}`);
  assert.equal(deltas.join(''), streamText);
  assert.ok(deltas.length >= 2, `text came in pieces (got ${deltas.length})`);
  assert.equal(messages.length, 1);
  assert.equal(textOf(messages[0]), streamText);
  assert.ok(created && created.type === 'message_creation', 'a message_creation step');
  for (const name of [
    'thread.run.created',
    'thread.run.queued',
    'thread.run.in_progress',
    'thread.message.created',
    'thread.message.delta',
    'thread.message.completed',
    'thread.run.step.completed',
    'thread.run.completed',
  ]) {
    assert.ok(events.includes(name), `stream had ${name} (got ${events.join(', ')})`);
  }
  assert.equal(events[0], 'thread.run.created');
  assert.equal(events.at(-1), 'thread.run.completed');

  const stored = await client.beta.threads.runs.retrieve(thread.id, run.id);
  assert.equal(stored.status, 'completed');
  assert.equal(await latestAssistantText(thread.id, run.id), streamText);

  console.log(`node sdk ok: ${polled.id} (polled), ${run.id} (streamed, ${deltas.length} deltas)`);
}

main().catch((error) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
