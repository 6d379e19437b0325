// All of the UI's data access, in one place: regenerate schema.d.ts (`npm run gen`)
// and fix what the compiler points at here; pages only import from this module.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

type S = components["schemas"];
export type Principal = S["Principal"];
export type Model = S["Model"];
export type ModelVersion = S["ModelVersion"];
export type Deployment = S["Deployment"];
export type TrafficRoute = S["TrafficRoute"];
export type Job = S["Job"];
export type JobEvent = S["JobEvent"];
export type JobMetric = S["JobMetric"];
export type EntryInfo = S["EntryInfo"];
export type ZooEntry = S["ZooEntry"];
export type Dataset = S["Dataset"];
export type DatasetVersion = S["DatasetVersion"];
export type Token = S["Token"];
export type TokenWithSecret = S["TokenWithSecret"];
export type Project = S["Project"];
export type JobState = Job["state"];

const TOKEN_KEY = "aimass.token";

/** The signed-in token: sessionStorage only (gone with the tab), never in a URL. */
export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An answer other than 2xx: the server's error code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  /** For a 422 about ``params.<name>``: that param's name and the message about it. */
  paramErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const m of this.message.matchAll(/params\.([A-Za-z0-9_]+)[^:]*: ([^;]+)/g)) {
      out[m[1]] = m[2];
    }
    return out;
  }
}

function authHeaders(): Record<string, string> {
  const token = session.token();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const bearer: Middleware = {
  onRequest({ request }) {
    const token = session.token();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
};

const api = createClient<paths>({ baseUrl: "" });
api.use(bearer);

async function errorOf(response: Response, body?: unknown): Promise<ApiError> {
  let doc = body;
  if (doc === undefined) {
    try {
      doc = await response.json();
    } catch {
      doc = undefined;
    }
  }
  const err = (doc as { error?: { code?: string; message?: string } } | undefined)?.error;
  return new ApiError(response.status, err?.code ?? "error", err?.message ?? response.statusText);
}

async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw await errorOf(response, error);
  return data as T;
}

// ---- access ----
export const whoami = () => unwrap(api.GET("/api/v1/whoami"));
export const listTokens = () => unwrap(api.GET("/api/v1/tokens"));
export const createToken = (body: S["TokenCreate"]) =>
  unwrap(api.POST("/api/v1/tokens", { body }));
export const revokeToken = (id: number) =>
  unwrap(api.DELETE("/api/v1/tokens/{token_id}", { params: { path: { token_id: id } } }));
export const listProjects = () => unwrap(api.GET("/api/v1/projects"));
export const createProject = (body: S["ProjectCreate"]) =>
  unwrap(api.POST("/api/v1/projects", { body }));

// ---- models ----
export const listModels = (q: { name?: string; tag?: string[]; flavor?: string; limit?: number }) =>
  unwrap(api.GET("/api/v1/models", { params: { query: q } }));
export const searchVersions = (q: {
  name?: string;
  tag?: string[];
  flavor?: string;
  metric?: string[];
  alias?: string;
  limit?: number;
}) => unwrap(api.GET("/api/v1/versions", { params: { query: q } }));
export const getModel = (name: string) =>
  unwrap(api.GET("/api/v1/models/{name}", { params: { path: { name } } }));
export const listVersions = (name: string) =>
  unwrap(api.GET("/api/v1/models/{name}/versions", { params: { path: { name } } }));
export const compareVersions = (name: string, versions: string, dataset: string) =>
  unwrap(
    api.GET("/api/v1/models/{name}/compare", {
      params: { path: { name }, query: { versions, dataset } },
    }),
  );
export const setAlias = (name: string, alias: string, version: number) =>
  unwrap(
    api.PUT("/api/v1/models/{name}/aliases/{alias}", {
      params: { path: { name, alias } },
      body: { version },
    }),
  );

/** Upload a model file as a new version of ``name``; ``onProgress`` gets 0..1 as bytes go. */
export const uploadVersion = (
  name: string,
  file: File,
  onProgress: (fraction: number) => void,
): Promise<ModelVersion> =>
  uploadFile(`/api/v1/models/${encodeURIComponent(name)}/versions`, file, onProgress);

/** Upload a data file as a new version of dataset ``name``, with progress. */
export const uploadDatasetVersion = (
  name: string,
  file: File,
  onProgress: (fraction: number) => void,
): Promise<DatasetVersion> =>
  uploadFile(`/api/v1/datasets/${encodeURIComponent(name)}/versions`, file, onProgress);

// XMLHttpRequest, not fetch: only it reports upload progress.
function uploadFile<T>(
  path: string,
  file: File,
  onProgress: (fraction: number) => void,
  meta?: unknown,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was cut off"));
    xhr.onload = () => {
      let doc: unknown;
      try {
        doc = JSON.parse(xhr.responseText);
      } catch {
        doc = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(doc as T);
      } else {
        const err = (doc as { error?: { code?: string; message?: string } } | undefined)?.error;
        reject(new ApiError(xhr.status, err?.code ?? "error", err?.message ?? xhr.statusText));
      }
    };
    const form = new FormData();
    form.append("file", file, file.name);
    if (meta !== undefined) form.append("meta", JSON.stringify(meta));
    xhr.send(form);
  });
}

// ---- deployments ----
export const listDeployments = () => unwrap(api.GET("/api/v1/deployments"));
export const getDeployment = (name: string) =>
  unwrap(api.GET("/api/v1/deployments/{name}", { params: { path: { name } } }));
export const createDeployment = (body: S["DeploymentCreate"]) =>
  unwrap(api.POST("/api/v1/deployments", { body }));
export const updateDeployment = (name: string, body: S["DeploymentUpdate"]) =>
  unwrap(api.PATCH("/api/v1/deployments/{name}", { params: { path: { name } }, body }));

/** Send a predict request to a deployment (the inference path, outside the OpenAPI). */
export async function predict(name: string, body: unknown): Promise<unknown> {
  const response = await fetch(`/api/v1/deployments/${encodeURIComponent(name)}/predict`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// ---- jobs ----
export interface JobPage {
  jobs: Job[];
  next: string | null;
}
export async function listJobs(q: {
  state?: JobState;
  kind?: Job["kind"];
  entry?: string;
  limit?: number;
  after?: string;
}): Promise<JobPage> {
  const query = { ...q, after: q.after ? Number(q.after) : undefined };
  const { data, error, response } = await api.GET("/api/v1/jobs", { params: { query } });
  if (!response.ok) throw await errorOf(response, error);
  return { jobs: data as Job[], next: response.headers.get("X-Next-Cursor") };
}
export const getJob = (id: number) =>
  unwrap(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: id } } }));
export const jobEvents = (id: number) =>
  unwrap(api.GET("/api/v1/jobs/{job_id}/events", { params: { path: { job_id: id } } }));
/** A job's metrics for its charts: the server downsamples a long series to ``maxPoints``. */
export const jobMetrics = (id: number, maxPoints = 2000) =>
  unwrap(
    api.GET("/api/v1/jobs/{job_id}/metrics", {
      params: { path: { job_id: id }, query: { max_points: maxPoints } },
    }),
  );
export const jobCheckpoints = (id: number) =>
  unwrap(api.GET("/api/v1/jobs/{job_id}/checkpoints", { params: { path: { job_id: id } } }));
export const cancelJob = (id: number) =>
  unwrap(api.POST("/api/v1/jobs/{job_id}/cancel", { params: { path: { job_id: id } } }));
export const retryJob = (id: number) =>
  unwrap(api.POST("/api/v1/jobs/{job_id}/retry", { params: { path: { job_id: id } } }));
export const submitJob = (body: S["JobCreate"]) => unwrap(api.POST("/api/v1/jobs", { body }));
export const listEntries = () => unwrap(api.GET("/api/v1/jobs/entries"));
export const listZoo = () => unwrap(api.GET("/api/v1/zoo"));
export const materializeZooDataset = (name: string) =>
  unwrap(api.POST("/api/v1/zoo/datasets/{name}", { params: { path: { name } } }));

export interface LogEvent {
  event: string;
  data: string;
}

/** Follow a job's log (SSE over fetch, so the bearer header goes with it).
 *
 * Each ``log`` event is one line. On a dropped connection it reconnects and skips the
 * lines it already has (the stream restarts from the attempt's first line), so no line
 * is shown twice or lost. Stops at ``end`` or when ``signal`` aborts.
 */
export async function followLogs(
  id: number,
  onEvent: (e: LogEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let seen = 0;
  for (;;) {
    let index = 0;
    try {
      const response = await fetch(`/api/v1/jobs/${id}/logs?follow=true`, {
        headers: { ...authHeaders(), Accept: "text/event-stream" },
        signal,
      });
      if (!response.ok || !response.body) throw await errorOf(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
            else if (line.startsWith("data:")) data.push(line.slice(5));
          }
          if (block.startsWith(":")) continue;
          index += 1;
          if (index <= seen) continue;
          seen = index;
          onEvent({ event, data: data.join("\n") });
          if (event === "end") return;
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) throw e;
    }
    if (signal.aborted) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---- datasets ----
export const listDatasets = () => unwrap(api.GET("/api/v1/datasets"));
export const listDatasetVersions = (name: string) =>
  unwrap(api.GET("/api/v1/datasets/{name}/versions", { params: { path: { name } } }));

// ---- pipelines ----
export type Pipeline = S["Pipeline"];
export type PipelineRun = S["PipelineRun"];
export type StepRun = S["StepRun"];
export const listPipelines = () => unwrap(api.GET("/api/v1/pipelines"));
export const getPipeline = (name: string) =>
  unwrap(api.GET("/api/v1/pipelines/{name}", { params: { path: { name } } }));
export const listPipelineRuns = (name: string, limit = 20) =>
  unwrap(api.GET("/api/v1/pipelines/{name}/runs", { params: { path: { name }, query: { limit } } }));
export const getPipelineRun = (id: number) =>
  unwrap(api.GET("/api/v1/pipelines/runs/{run_id}", { params: { path: { run_id: id } } }));

// ---- bundles ----
/** Download a version as a bundle file (fetched with the bearer header, saved from a blob). */
export async function exportBundle(name: string, version: number): Promise<void> {
  const path = `/api/v1/models/${encodeURIComponent(name)}/versions/${version}/bundle`;
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await errorOf(response);
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const quoted = /filename\*=UTF-8''([^;]+)/.exec(disposition)?.[1];
  const filename = quoted ? decodeURIComponent(quoted) : `${name}-v${version}.aimass`;
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
/** Import a bundle file as a new version of the model it names (or of ``name``), with progress. */
export const importBundle = (
  name: string,
  file: File,
  onProgress: (fraction: number) => void,
): Promise<ModelVersion> =>
  uploadFile("/api/v1/bundles", file, onProgress, name ? { name } : undefined);

// ---- monitoring ----
export type NodeStatus = S["NodeStatus"];
export type NodeSample = S["NodeSample"];
export type DriftReport = S["DriftReport"];
export type PredictionRecord = S["PredictionRecord"];
export type MonitoringEvent = S["MonitoringEvent"];
export type LogRecord = S["LogRecord"];
export type AlertsView = S["AlertsView"];
export type QualityReport = S["QualityReport"];
export const listNodes = () => unwrap(api.GET("/api/v1/nodes"));
export const nodeHistory = (node: string, since?: string, limit = 2000) =>
  unwrap(
    api.GET("/api/v1/nodes/{node}/history", {
      params: { path: { node }, query: { since, limit } },
    }),
  );
export const driftReport = (name: string, windowS = 300, end?: string) =>
  unwrap(
    api.GET("/api/v1/deployments/{name}/drift", {
      params: { path: { name }, query: { window_s: windowS, end } },
    }),
  );
export const liveQuality = (name: string) =>
  unwrap(api.GET("/api/v1/deployments/{name}/quality", { params: { path: { name } } }));
export const listPredictions = (name: string, q: { start?: string; version?: number; limit?: number }) =>
  unwrap(api.GET("/api/v1/deployments/{name}/predictions", { params: { path: { name }, query: q } }));
export const listEvents = (q: { kind?: string; subject?: string; limit?: number }) =>
  unwrap(api.GET("/api/v1/monitoring/events", { params: { query: q } }));
export const listAlerts = () => unwrap(api.GET("/api/v1/monitoring/alerts"));
export const searchLogs = (q: {
  since?: string;
  level?: string;
  component?: string;
  request_id?: string;
  text?: string;
  limit?: number;
}) => unwrap(api.GET("/api/v1/logs", { params: { query: q } }));

/** One scrape of /metrics: per deployment, requests answered and the latency histogram. */
export interface Scrape {
  at: number;
  requests: Record<string, number>;
  errors: Record<string, number>;
  /** deployment -> [upper bound (s), cumulative count][], summed over versions. */
  latency: Record<string, [number, number][]>;
}

export async function scrapeMetrics(): Promise<Scrape> {
  const response = await fetch("/metrics", { headers: authHeaders() });
  if (!response.ok) throw await errorOf(response);
  const out: Scrape = { at: performance.now(), requests: {}, errors: {}, latency: {} };
  const buckets: Record<string, Record<string, number>> = {};
  const line = /^(aimass_inference_requests_total|aimass_inference_request_seconds_bucket)\{([^}]*)\} ([0-9.eE+-]+|\+Inf)$/;
  for (const text of (await response.text()).split("\n")) {
    const m = line.exec(text);
    if (!m) continue;
    const dep = /deployment="([^"]*)"/.exec(m[2])?.[1];
    if (dep === undefined) continue;
    const value = Number(m[3]);
    if (m[1] === "aimass_inference_requests_total") {
      out.requests[dep] = (out.requests[dep] ?? 0) + value;
      const code = /code="([^"]*)"/.exec(m[2])?.[1] ?? "";
      if (code.startsWith("5")) out.errors[dep] = (out.errors[dep] ?? 0) + value;
    } else {
      const le = /le="([^"]*)"/.exec(m[2])?.[1] ?? "+Inf";
      const b = (buckets[dep] ??= {});
      b[le] = (b[le] ?? 0) + value;
    }
  }
  for (const [dep, b] of Object.entries(buckets)) {
    out.latency[dep] = Object.entries(b)
      .map(([le, n]): [number, number] => [le === "+Inf" ? Infinity : Number(le), n])
      .sort((x, y) => x[0] - y[0]);
  }
  return out;
}

/** The ``q`` quantile (0..1) of the requests between two histogram snapshots, or null. */
export function quantileBetween(
  before: [number, number][] | undefined,
  after: [number, number][] | undefined,
  q: number,
): number | null {
  if (!after) return null;
  const prev = new Map(before ?? []);
  const counts = after.map(([le, n]): [number, number] => [le, n - (prev.get(le) ?? 0)]);
  const total = counts[counts.length - 1]?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, n] of counts) {
    if (n >= rank) {
      if (!isFinite(le)) return lower; // past the last bound: the last finite bound
      const inBucket = n - below;
      return inBucket > 0 ? lower + ((le - lower) * (rank - below)) / inBucket : le;
    }
    lower = le;
    below = n;
  }
  return lower;
}
