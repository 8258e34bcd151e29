// Public API of the render_sdk TypeScript client.
export { WorkflowsClient, ApiError, RenderError, TaskRunError, decodeJson, type ClientOptions } from "./client.js";
export { SseParser, type ServerSentEvent } from "./sse.js";
export { fromWireJson, toWireJson, WireError, Dialect } from "./wire.js";
export { parseJson, writeJson, JsonSyntaxError, type JsonNode } from "./json.js";
export * from "./gen/render/workflows/v1/task_run_pb.js";
export * from "./gen/render/workflows/v1/workflows_service_pb.js";
