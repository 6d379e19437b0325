import { useEffect, useState } from "preact/hooks";
import {
  type Deployment,
  driftReport,
  getDeployment,
  listDeployments,
  liveQuality,
  listVersions,
  type ModelVersion,
  predict,
  type TrafficRoute,
  updateDeployment,
} from "../api/client";
import { useCanWrite } from "../auth";
import { messageOf, useLoad } from "../hooks";
import { ratesBetween, useScrapes } from "../live";
import { Link } from "../router";
import { TimeChart } from "./chart";

export function Deployments() {
  const deployments = useLoad(listDeployments, [], 3000);
  return (
    <section>
      <h1>Deployments</h1>
      {deployments.error && <p class="error">{deployments.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Model</th>
            <th>Traffic</th>
            <th>State</th>
            <th>Replicas</th>
          </tr>
        </thead>
        <tbody>
          {(deployments.data ?? []).map((d) => (
            <tr key={d.id}>
              <td>
                <Link href={`/deployments/${encodeURIComponent(d.name)}`}>{d.name}</Link>
              </td>
              <td>{d.model}</td>
              <td>{routeText(d.routes)}</td>
              <td>{d.state}</td>
              <td>{d.replicas}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="hint">Deploy a version from its model's page.</p>
    </section>
  );
}

function routeText(routes: Deployment["routes"]): string {
  return routes
    .map((r) => `${r.alias ? `@${r.alias}` : `v${r.version}`}: ${r.weight}`)
    .join(", ");
}

/** A request body for ``v``: the signature's inputs, one row of zeros. */
export function exampleRequest(v: ModelVersion | undefined): string {
  const inputs = v?.signature?.inputs ?? [];
  if (inputs.length === 1) {
    const width = Math.max(1, inputs[0].shape[inputs[0].shape.length - 1] ?? 1);
    const zero = inputs[0].datatype === "BYTES" ? "" : 0;
    return JSON.stringify({ inputs: [Array.from({ length: width }, () => zero)] });
  }
  if (inputs.length > 1) {
    const record: Record<string, unknown> = {};
    for (const t of inputs) record[t.name] = t.datatype === "BYTES" ? "" : 0;
    return JSON.stringify({ inputs: [record] });
  }
  return JSON.stringify({ inputs: [[0]] });
}

function TrafficEditor(props: { d: Deployment; versions: ModelVersion[]; onSaved: () => void }) {
  const [routes, setRoutes] = useState<TrafficRoute[]>(props.d.routes);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setRoutes(props.d.routes), [props.d.revision]);
  const total = routes.reduce((s, r) => s + (r.weight ?? 0), 0);
  const change = (i: number, patch: Partial<TrafficRoute>) => {
    setSaved(false);
    setRoutes(routes.map((r, j) => (i === j ? { ...r, ...patch } : r)));
  };
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await updateDeployment(props.d.name, { traffic: routes });
      setError(null);
      setSaved(true);
      props.onSaved();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form class="traffic" onSubmit={save}>
      <table>
        <thead>
          <tr>
            <th>Version</th>
            <th>Weight</th>
            <th>Share</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {routes.map((r, i) => (
            <tr key={i}>
              <td>
                {r.alias ? (
                  `@${r.alias}`
                ) : (
                  <select
                    name={`version-${i}`}
                    value={r.version ?? ""}
                    onChange={(e) => change(i, { version: Number(e.currentTarget.value) })}
                  >
                    {props.versions.map((v) => (
                      <option key={v.version} value={v.version}>
                        {v.version}
                      </option>
                    ))}
                  </select>
                )}
              </td>
              <td>
                <input
                  name={`weight-${i}`}
                  type="number"
                  min={0}
                  step="any"
                  value={r.weight}
                  onInput={(e) => change(i, { weight: Number(e.currentTarget.value) })}
                />
              </td>
              <td>{total > 0 ? `${Math.round(((r.weight ?? 0) / total) * 1000) / 10}%` : "–"}</td>
              <td>
                {routes.length > 1 && (
                  <button
                    type="button"
                    class="link"
                    onClick={() => setRoutes(routes.filter((_, j) => j !== i))}
                  >
                    remove
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button
        type="button"
        onClick={() =>
          setRoutes([...routes, { version: props.versions[0]?.version ?? 1, weight: 10 }])
        }
      >
        Add a canary route
      </button>{" "}
      <button type="submit" class="primary">
        Save split
      </button>
      {saved && <span class="ok"> saved</span>}
      {error && <p class="error">{error}</p>}
    </form>
  );
}

function TryIt(props: { d: Deployment; version: ModelVersion | undefined }) {
  const [body, setBody] = useState("");
  const [edited, setEdited] = useState(false);
  const [answer, setAnswer] = useState<string | null>(null);
  useEffect(() => {
    // Prefilled from the signature once it has loaded, unless the user typed already.
    if (!edited) setBody(exampleRequest(props.version));
  }, [props.version?.id]);
  const send = async (e: Event) => {
    e.preventDefault();
    try {
      const parsed: unknown = JSON.parse(body);
      setAnswer(JSON.stringify(await predict(props.d.name, parsed), null, 1));
    } catch (err) {
      setAnswer(messageOf(err));
    }
  };
  return (
    <form class="tryit" onSubmit={send}>
      <textarea
        name="request"
        rows={4}
        value={body}
        onInput={(e) => {
          setEdited(true);
          setBody(e.currentTarget.value);
        }}
      />
      <button type="submit" class="primary">
        Send
      </button>
      {answer !== null && <pre class="answer">{answer}</pre>}
    </form>
  );
}

const KEEP = 300; // points on the live charts (5 minutes at one a second)

interface Live {
  x: number[];
  p50: (number | null)[];
  p99: (number | null)[];
  rps: (number | null)[];
  errors: (number | null)[];
  total: number;
}

/** Scrape /metrics every second: this deployment's p50/p99 (ms), req/s and error rate, live. */
function useLive(name: string): Live {
  const { prev, now } = useScrapes(1000);
  const [live, setLive] = useState<Live>({ x: [], p50: [], p99: [], rps: [], errors: [], total: 0 });
  useEffect(() => setLive({ x: [], p50: [], p99: [], rps: [], errors: [], total: 0 }), [name]);
  useEffect(() => {
    if (!now) return;
    const r = ratesBetween(prev, now, name);
    if (!prev) {
      setLive((l) => ({ ...l, total: r.total }));
      return;
    }
    const keep = <T,>(a: T[], v: T) => [...a, v].slice(-KEEP);
    setLive((l) => ({
      x: keep(l.x, Date.now() / 1000),
      p50: keep(l.p50, r.p50),
      p99: keep(l.p99, r.p99),
      rps: keep(l.rps, r.rps),
      errors: keep(l.errors, r.errorRate),
      total: r.total,
    }));
  }, [now]);
  return live;
}

const lastOf = <T,>(a: T[]): T | undefined => a[a.length - 1];

/** Drift of the last five minutes' logged traffic, and live quality: two small tiles. */
function Health(props: { name: string }) {
  const drift = useLoad(() => driftReport(props.name, 300), [props.name], 15000);
  const quality = useLoad(() => liveQuality(props.name), [props.name], 15000);
  const d = drift.data;
  const q = quality.data?.versions ?? [];
  return (
    <div class="cards">
      <div class="card" data-testid="drift-tile">
        <div class="figure">
          {d ? ((d.drifted ?? []).length ? `${(d.drifted ?? []).length} drifted` : d.rows ? "no drift" : "–") : drift.error ? "–" : "…"}
        </div>
        <div>
          <Link href={`/monitoring/drift?deployment=${encodeURIComponent(props.name)}`}>
            drift, last 5 min
          </Link>
          {d && <span class="muted"> · {d.rows} rows</span>}
          {drift.error && <div class="muted small">{drift.error}</div>}
        </div>
      </div>
      <div class="card" data-testid="quality-tile">
        <div class="figure">
          {q.length
            ? q
                .map((v) => {
                  const [metric, value] = Object.entries(v.metrics)[0] ?? ["", NaN];
                  return `v${v.version} ${metric} ${Number(value).toFixed(3)}`;
                })
                .join(" · ")
            : "–"}
        </div>
        <div>live quality (labelled rows)</div>
      </div>
    </div>
  );
}

export function DeploymentPage(props: { name: string }) {
  const canWrite = useCanWrite();
  const d = useLoad(() => getDeployment(props.name), [props.name], 2000);
  const live = useLive(props.name);
  const rate = lastOf(live.rps);
  const errorRate = lastOf(live.errors);
  const p50 = lastOf(live.p50);
  const p99 = lastOf(live.p99);
  const model = d.data?.model;
  const versions = useLoad(
    () => (model ? listVersions(model) : Promise.resolve([] as ModelVersion[])),
    [model],
  );
  if (d.error && !d.data) return <p class="error">{d.error}</p>;
  if (!d.data) return <p class="loading">Loading…</p>;
  const dep = d.data;
  const firstVersion = dep.routes[0]?.version;
  const version = (versions.data ?? []).find((v) => v.version === firstVersion);
  return (
    <section>
      <h1>
        Deployment <span class="name">{dep.name}</span>
      </h1>
      <dl class="facts">
        <dt>Model</dt>
        <dd>
          <Link href={`/models/${encodeURIComponent(dep.model)}`}>{dep.model}</Link>
        </dd>
        <dt>State</dt>
        <dd>{dep.state}</dd>
        <dt>Requests</dt>
        <dd data-testid="request-count">{live.total}</dd>
        <dt>Requests/s</dt>
        <dd data-testid="rps">{rate === null || rate === undefined ? "…" : rate.toFixed(1)}</dd>
        <dt>Latency p50 / p99</dt>
        <dd data-testid="latency">
          {p50 === null || p50 === undefined ? "–" : `${p50.toFixed(1)} ms`} /{" "}
          {p99 === null || p99 === undefined ? "–" : `${p99.toFixed(1)} ms`}
        </dd>
        <dt>Error rate</dt>
        <dd>{errorRate === null || errorRate === undefined ? "–" : `${(errorRate * 100).toFixed(1)} %`}</dd>
        <dt>Batching</dt>
        <dd>
          up to {dep.batching?.max_batch_size} rows, waits {dep.batching?.max_delay_ms} ms
        </dd>
        <dt>Revision</dt>
        <dd>{dep.revision}</dd>
      </dl>
      <Health name={dep.name} />
      <h2>Live</h2>
      <div class="charts">
        <TimeChart
          title="latency (ms)"
          x={live.x}
          series={[
            { label: "p50", values: live.p50 },
            { label: "p99", values: live.p99 },
          ]}
        />
        <TimeChart title="requests/s" x={live.x} series={[{ label: "req/s", values: live.rps }]} />
      </div>
      <h2>Replicas</h2>
      <table>
        <thead>
          <tr>
            <th>Replica</th>
            <th>State</th>
            <th>Versions</th>
            <th>Device</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {(dep.replica_status ?? []).map((r) => (
            <tr key={r.replica}>
              <td>{r.replica}</td>
              <td>{r.state}</td>
              <td>{r.versions?.join(", ")}</td>
              <td data-testid="replica-device">{r.device ?? ""}</td>
              <td>{r.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Traffic split</h2>
      {canWrite ? (
        <TrafficEditor d={dep} versions={versions.data ?? []} onSaved={d.reload} />
      ) : (
        <p>{routeText(dep.routes)}</p>
      )}
      <h2>Try it</h2>
      <TryIt d={dep} version={version} />
    </section>
  );
}
