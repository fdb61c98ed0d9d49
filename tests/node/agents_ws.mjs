// @openai/agents' Responses-over-WebSocket model (OpenAIResponsesWSModel, through
// OpenAIProvider's useResponsesWebSocket) against streamchat: an Agent with one function tool,
// run to its final output. Prints one JSON object: the tool's calls, the final output, and the
// model responses' ids and output item types; tests/test_e2e_node_clients.py asserts on it.
// Env: OPENAI_BASE_URL, OPENAI_API_KEY, MODEL.
import { Agent, OpenAIProvider, OpenAIResponsesWSModel, Runner, setTracingDisabled, tool }
  from '@openai/agents';
import { WebSocket } from 'ws';
import { z } from 'zod';

// The WS model dials with the global WebSocket (and its `headers` option: Node 22's, or ws's);
// Node 20 has none without a flag.
globalThis.WebSocket ??= WebSocket;
setTracingDisabled(true); // else traces go to api.openai.com

const MODEL = process.env.MODEL ?? 'SmolLM2-135M-Instruct';
const calls = [];
const getWeather = tool({
  name: 'get_weather',
  description: 'The weather in a city.',
  parameters: z.object({ city: z.enum(['Paris', 'Oslo']) }),
  execute: async ({ city }) => {
    calls.push(city);
    return `Sunny and 21 C in ${city}.`;
  },
});
const agent = new Agent({
  name: 'Weather',
  instructions: 'Answer with the weather, using get_weather.',
  model: MODEL,
  tools: [getWeather],
  // The 135M model calls a tool only when made to; the agent drops the forcing after the call
  // (resetToolChoice), so the next turn answers in text.
  modelSettings: { toolChoice: 'required', temperature: 0, maxTokens: 100 },
});

const provider = new OpenAIProvider({ // baseURL and apiKey: OPENAI_BASE_URL, OPENAI_API_KEY
  baseURL: process.env.OPENAI_BASE_URL, useResponses: true, useResponsesWebSocket: true,
});
const model = await provider.getModel(MODEL);
try {
  const result = await new Runner({ modelProvider: provider })
    .run(agent, 'What is the weather in Paris?', { maxTurns: 3 });
  console.log(JSON.stringify({
    model: model instanceof OpenAIResponsesWSModel ? 'OpenAIResponsesWSModel' : model.constructor.name,
    calls,
    finalOutput: result.finalOutput,
    responses: result.rawResponses.map((r) => ({
      id: r.responseId, output: r.output.map((item) => item.type),
    })),
  }));
} finally {
  await provider.close(); // the socket, else it keeps node running
}
