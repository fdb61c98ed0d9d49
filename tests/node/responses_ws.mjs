// The openai node SDK's Responses WebSocket client (ResponsesWS) against streamchat: one socket,
// several `response.create` in a row, as an agent loop sends them. Prints one JSON object:
// per step, the events' types and sequence_numbers, the text deltas joined, and the final
// response; tests/test_e2e_node_clients.py asserts on it. Env: OPENAI_BASE_URL, OPENAI_API_KEY,
// MODEL.
import OpenAI from 'openai';
import { ResponsesWS } from 'openai/resources/responses/ws';

const MODEL = process.env.MODEL ?? 'SmolLM2-135M-Instruct';
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);
const WEATHER = {
  type: 'object', additionalProperties: false, required: ['city'],
  properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } },
};
const TOOLS = [{ type: 'function', name: 'get_weather', parameters: WEATHER, strict: true }];
const SCHEMA = {
  type: 'object', additionalProperties: false, required: ['answer'],
  properties: { answer: { type: 'string', enum: ['yes', 'no'] } },
};

const client = new OpenAI({ maxRetries: 0 }); // OPENAI_BASE_URL and OPENAI_API_KEY from env
const ws = new ResponsesWS(client);

// One response: sends its create, collects its events up to the terminal one (or an error).
function respond(fields) {
  return new Promise((resolve, reject) => {
    const events = [];
    const onEvent = (event) => {
      events.push(event);
      if (TERMINAL.has(event.type)) done();
    };
    const onError = (error) => { off(); reject(error); };
    const off = () => { ws.off('event', onEvent); ws.off('error', onError); };
    const done = () => {
      off();
      resolve({
        events: events.map((e) => [e.type, e.sequence_number]),
        text: events.filter((e) => e.type === 'response.output_text.delta')
          .map((e) => e.delta).join(''),
        response: events.at(-1).response,
      });
    };
    ws.on('event', onEvent);
    ws.on('error', onError);
    ws.send({ type: 'response.create', model: MODEL, temperature: 0, ...fields });
  });
}

const text = await respond({ input: 'Say hello.', max_output_tokens: 8 });
const called = await respond({
  input: 'Weather in Paris?', tools: TOOLS, tool_choice: 'required', max_output_tokens: 48,
});
const call = called.response.output.find((item) => item.type === 'function_call');
if (!call) { // the test shows what came instead
  ws.close({ code: 1000, reason: 'no call' });
  console.log(JSON.stringify({ text, called }));
  process.exit(0);
}
const answered = await respond({
  previous_response_id: called.response.id, tools: TOOLS, max_output_tokens: 8,
  input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"sky": "clear"}' }],
});
const structured = await respond({
  input: 'Is the sky blue? Answer in JSON.', max_output_tokens: 16,
  text: { format: { type: 'json_schema', name: 'verdict', schema: SCHEMA, strict: true } },
});
ws.close({ code: 1000, reason: 'done' });
console.log(JSON.stringify({ text, called, answered, structured }));
