// Monitoring: nodes and their history, drift per deployment, alerts and events, the
// prediction log (paged) and the system log (searchable, live). Every string is text.
import { useEffect, useState } from "preact/hooks";
import {
  type DriftReport,
  driftReport,
  listAlerts,
  listDeployments,
  listEvents,
  listNodes,
  listPredictions,
  nodeHistory,
  type PredictionRecord,
  searchLogs,
} from "../api/client";
import { useIsAdmin } from "../auth";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { TimeChart } from "./chart";
import { EventRows } from "./eventrows";
import { NodeRows } from "./overview";

const TABS: [string, string][] = [
  ["nodes", "Nodes"],
  ["drift", "Drift"],
  ["alerts", "Alerts & events"],
  ["predictions", "Prediction log"],
  ["logs", "System log"],
];

export function Monitoring(props: { path: string; query: URLSearchParams }) {
  const tab = props.path.split("/")[2] || "nodes";
  return (
    <section>
      <h1>Monitoring</h1>
      <div class="tabs">
        {TABS.map(([key, label]) => (
          <Link key={key} href={`/monitoring/${key}`} class={tab === key ? "active" : ""}>
            {label}
          </Link>
        ))}
      </div>
      {tab === "nodes" && <Nodes node={props.query.get("node")} />}
      {tab === "drift" && <Drift deployment={props.query.get("deployment")} />}
      {tab === "alerts" && <Alerts />}
      {tab === "predictions" && <Predictions deployment={props.query.get("deployment")} />}
      {tab === "logs" && <SystemLog />}
      {!TABS.some(([key]) => key === tab) && <p>No such monitoring page.</p>}
    </section>
  );
}

const epoch = (iso: string) => new Date(iso.endsWith("Z") || iso.includes("+") ? iso : `${iso}Z`).getTime() / 1000;

function Nodes(props: { node: string | null }) {
  const nodes = useLoad(listNodes, [], 5000);
  const node = props.node ?? nodes.data?.[0]?.node ?? null;
  const history = useLoad(
    () => (node ? nodeHistory(node) : Promise.resolve([])),
    [node],
    5000,
  );
  const samples = history.data ?? [];
  const x = samples.map((s) => epoch(s.at));
  return (
    <>
      {nodes.error && <p class="error">{nodes.error}</p>}
      <NodeRows nodes={nodes.data ?? []} />
      {node && (
        <>
          <h2>
            History of <span class="name">{node}</span>
          </h2>
          <div class="charts">
            <TimeChart
              title="CPU and memory (%)"
              x={x}
              series={[
                { label: "CPU %", values: samples.map((s) => s.cpu_percent) },
                {
                  label: "memory %",
                  values: samples.map((s) =>
                    s.memory_total_bytes ? (100 * s.memory_used_bytes) / s.memory_total_bytes : null,
                  ),
                },
                { label: "GPU %", values: samples.map((s) => s.gpu_percent ?? null) },
              ]}
            />
            <TimeChart
              title="network (KiB/s)"
              x={x}
              series={[
                { label: "rx", values: samples.map((s) => s.net_rx_bytes_per_s / 1024) },
                { label: "tx", values: samples.map((s) => s.net_tx_bytes_per_s / 1024) },
              ]}
            />
          </div>
        </>
      )}
    </>
  );
}

/** A deployment picker that keeps its choice in the address (?deployment=). */
function PickDeployment(props: { tab: string; value: string | null }) {
  const deployments = useLoad(listDeployments, []);
  return (
    <label>
      Deployment{" "}
      <select
        name="deployment"
        value={props.value ?? ""}
        onChange={(e) =>
          navigate(`/monitoring/${props.tab}?deployment=${encodeURIComponent(e.currentTarget.value)}`)
        }
      >
        <option value="">choose…</option>
        {(deployments.data ?? []).map((d) => (
          <option key={d.name} value={d.name}>
            {d.name}
          </option>
        ))}
      </select>
    </label>
  );
}

const WINDOWS: [number, string][] = [
  [300, "5 minutes"],
  [3600, "1 hour"],
  [86400, "1 day"],
];

function Drift(props: { deployment: string | null }) {
  const [windowS, setWindowS] = useState(300);
  const name = props.deployment;
  const report = useLoad(
    () => (name ? driftReport(name, windowS) : Promise.resolve(null)),
    [name, windowS],
    15000,
  );
  const history = useLoad(
    () => (name ? listEvents({ kind: "drift", subject: name, limit: 50 }) : Promise.resolve([])),
    [name],
    15000,
  );
  const r = report.data;
  // The past windows cost a drift test each on the server: drawn when asked for.
  const [showPast, setShowPast] = useState(false);
  useEffect(() => setShowPast(false), [name, windowS]);
  const past = useLoad(
    () => (name && showPast ? driftHistory(name, windowS) : Promise.resolve([])),
    [name, windowS, showPast],
  );
  const reports = past.data ?? [];
  const features = [...new Set(reports.flatMap((p) => p.features.map((f) => f.feature)))].sort();
  return (
    <>
      <div class="filters">
        <PickDeployment tab="drift" value={name} />
        <label>
          Window{" "}
          <select name="window" value={windowS} onChange={(e) => setWindowS(Number(e.currentTarget.value))}>
            {WINDOWS.map(([s, label]) => (
              <option key={s} value={s}>
                {label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {report.error && <p class="error">{report.error}</p>}
      {r && (
        <>
          <p>
            {r.rows} logged rows against {r.reference_rows} reference rows, α = {r.alpha}
            {r.window_start ? `, from ${r.window_start} to ${r.window_end}` : ""}.{" "}
            {(r.drifted ?? []).length ? (
              <strong class="error">Drifted: {(r.drifted ?? []).join(", ")}</strong>
            ) : (
              <span class="ok">No feature drifted.</span>
            )}
          </p>
          <table class="drift">
            <thead>
              <tr>
                <th>Feature</th>
                <th>Kind</th>
                <th>Test</th>
                <th>p-value</th>
                <th>Distance</th>
                <th>Statistic</th>
                <th>Threshold</th>
                <th>PSI</th>
                <th>Fired</th>
              </tr>
            </thead>
            <tbody>
              {r.features.map((f) => (
                <tr key={f.feature} data-feature={f.feature} class={f.drifted ? "fired" : ""}>
                  <td>{f.feature}</td>
                  <td>{f.kind}</td>
                  <td>{f.test}</td>
                  <td>{f.p_value.toPrecision(3)}</td>
                  <td>{f.distance}</td>
                  <td>{f.score.toPrecision(3)}</td>
                  <td>{f.threshold.toPrecision(3)}</td>
                  <td>{f.psi.toPrecision(3)}</td>
                  <td>{f.drifted ? "yes" : "no"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {r && !showPast && (
        <button type="button" onClick={() => setShowPast(true)}>
          Draw the last {HISTORY} windows
        </button>
      )}
      {showPast && !past.data && <p class="loading">Computing {HISTORY} windows…</p>}
      {features.length > 0 && (
        <>
          <h2>Over the last {HISTORY} windows</h2>
          <TimeChart
            title="statistic / threshold (above 1: drifted)"
            width={760}
            x={reports.map((p) => epoch(p.window_end ?? ""))}
            series={features.map((feature) => ({
              label: feature,
              values: reports.map((p) => {
                const f = p.features.find((x) => x.feature === feature);
                return f && f.threshold > 0 ? f.score / f.threshold : null;
              }),
            }))}
          />
        </>
      )}
      {name && (
        <>
          <h2>Drift events</h2>
          <EventRows events={history.data ?? []} />
        </>
      )}
    </>
  );
}

const HISTORY = 8;

/** The reports of the ``HISTORY`` windows before now, oldest first (windows without traffic left out). */
async function driftHistory(name: string, windowS: number): Promise<DriftReport[]> {
  const now = Date.now();
  const ends = Array.from({ length: HISTORY }, (_, k) =>
    new Date(now - (HISTORY - 1 - k) * windowS * 1000).toISOString(),
  );
  const settled = await Promise.allSettled(ends.map((end) => driftReport(name, windowS, end)));
  return settled
    .flatMap((s) => (s.status === "fulfilled" ? [s.value] : []))
    .filter((r) => r.rows > 0 && r.window_end);
}

function Alerts() {
  const view = useLoad(listAlerts, [], 5000);
  const events = useLoad(() => listEvents({ limit: 100 }), [], 5000);
  const v = view.data;
  return (
    <>
      {view.error && <p class="error">{view.error}</p>}
      <h2>Alerts</h2>
      {v && !v.alerts.length && <p class="muted">No alert has fired.</p>}
      {v && v.alerts.length > 0 && (
        <table class="alerts">
          <thead>
            <tr>
              <th>Rule</th>
              <th>Subject</th>
              <th>Status</th>
              <th>Severity</th>
              <th>Since</th>
              <th>Summary</th>
            </tr>
          </thead>
          <tbody>
            {v.alerts.map((a) => (
              <tr key={`${a.rule}/${a.subject}`} data-status={a.status}>
                <td>{a.rule}</td>
                <td>{a.subject}</td>
                <td>
                  <span class={`state ${a.status === "firing" ? "failed" : "succeeded"}`}>{a.status}</span>
                </td>
                <td>{a.severity}</td>
                <td>{a.status === "firing" ? a.starts_at : (a.ends_at ?? "")}</td>
                <td>{a.summary}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Rules</h2>
      {v && !v.rules.length && (
        <p class="muted">
          No rules: set <code>AIMASS_ALERT_RULES</code> (see docs/monitoring.md).
        </p>
      )}
      {v && v.rules.length > 0 && (
        <table class="rules">
          <thead>
            <tr>
              <th>Name</th>
              <th>Condition</th>
              <th>For</th>
              <th>Severity</th>
              <th>Subject</th>
            </tr>
          </thead>
          <tbody>
            {v.rules.map((r) => (
              <tr key={r.name}>
                <td>{r.name}</td>
                <td>
                  {r.metric} {r.op ?? ">"} {r.threshold}
                </td>
                <td>{r.for_s ?? 0} s</td>
                <td>{r.severity ?? "warning"}</td>
                <td>{r.subject ?? "every subject"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Events</h2>
      {events.error && <p class="error">{events.error}</p>}
      <EventRows events={events.data ?? []} />
    </>
  );
}

const PAGE = 50;

/** The prediction log, a page at a time (each page starts at the last one's last time). */
function Predictions(props: { deployment: string | null }) {
  const name = props.deployment;
  // Each page: where it starts, and the rows at that time the page before showed already.
  const [pages, setPages] = useState<{ start?: string; seen: string[] }[]>([{ seen: [] }]);
  useEffect(() => setPages([{ seen: [] }]), [name]);
  const { start, seen } = pages[pages.length - 1];
  const page = useLoad(
    () => (name ? listPredictions(name, { start, limit: PAGE + seen.length }) : Promise.resolve(null)),
    [name, start, seen.length],
  );
  const skip = new Set(seen);
  const key = (r: PredictionRecord) => `${r.request_id}/${r.row}`;
  const records = (page.data?.records ?? []).filter((r) => !skip.has(key(r))).slice(0, PAGE);
  const last = records[records.length - 1];
  const next = () => {
    if (!last) return;
    const boundary = records.filter((r) => r.time === last.time).map(key);
    setPages([...pages, { start: last.time, seen: boundary }]);
  };
  const previous = () => setPages(pages.slice(0, -1));
  return (
    <>
      <div class="filters">
        <PickDeployment tab="predictions" value={name} />
      </div>
      {page.error && <p class="error">{page.error}</p>}
      {page.data && (
        <p class="muted">
          Page {pages.length}: {records.length} rows of {page.data.total} from{" "}
          {start ?? "the first logged"} on.
        </p>
      )}
      {page.data && (
        <table class="predictions">
          <thead>
            <tr>
              <th>Time</th>
              <th>Request</th>
              <th>Version</th>
              <th>Latency</th>
              <th>Inputs</th>
              <th>Outputs</th>
            </tr>
          </thead>
          <tbody>
            {records.map((r) => (
              <tr key={key(r)}>
                <td>{r.time}</td>
                <td class="name">
                  {r.request_id}
                  {r.row ? ` #${r.row}` : ""}
                </td>
                <td>{r.version}</td>
                <td>{r.latency_ms.toFixed(2)} ms</td>
                <td class="sig">{JSON.stringify(r.inputs)}</td>
                <td class="sig">{JSON.stringify(r.outputs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="pager">
        <button type="button" disabled={pages.length < 2} onClick={previous}>
          Previous
        </button>
        <button type="button" disabled={!last || (page.data?.total ?? 0) <= records.length + seen.length} onClick={next}>
          Next
        </button>
      </div>
    </>
  );
}

const LEVELS = ["", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/** The server's structured log: filters, and a live tail (every 2 s) while "follow" is on. */
function SystemLog() {
  const admin = useIsAdmin();
  const [text, setText] = useState("");
  const [level, setLevel] = useState("");
  const [component, setComponent] = useState("");
  const [requestId, setRequestId] = useState("");
  const [follow, setFollow] = useState(true);
  const logs = useLoad(
    () =>
      admin
        ? searchLogs({
            text: text || undefined,
            level: level || undefined,
            component: component || undefined,
            request_id: requestId || undefined,
            limit: 500,
          })
        : Promise.resolve([]),
    [admin, text, level, component, requestId, follow],
    follow ? 2000 : undefined,
  );
  if (!admin) return <p>The system log is for admins.</p>;
  const records = [...(logs.data ?? [])].reverse(); // newest first
  return (
    <>
      <div class="filters">
        <input name="log-text" placeholder="text" value={text} onChange={(e) => setText(e.currentTarget.value)} />
        <select name="log-level" value={level} onChange={(e) => setLevel(e.currentTarget.value)}>
          {LEVELS.map((l) => (
            <option key={l} value={l}>
              {l || "any level"}
            </option>
          ))}
        </select>
        <input
          name="log-component"
          placeholder="component"
          value={component}
          onChange={(e) => setComponent(e.currentTarget.value)}
        />
        <input
          name="log-request"
          placeholder="request id"
          value={requestId}
          onChange={(e) => setRequestId(e.currentTarget.value)}
        />
        <label>
          <input type="checkbox" name="follow" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />{" "}
          follow
        </label>
      </div>
      {logs.error && <p class="error">{logs.error}</p>}
      <table class="syslog">
        <thead>
          <tr>
            <th>Time</th>
            <th>Level</th>
            <th>Component</th>
            <th>Node</th>
            <th>Request</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {records.map((r, i) => (
            <tr key={`${r.time}/${i}`} data-level={r.level}>
              <td>{r.time}</td>
              <td>{r.level}</td>
              <td>{r.component}</td>
              <td>{r.node}</td>
              <td class="name">{r.request_id}</td>
              <td class="message">
                {r.message}
                {r.exc && <pre>{r.exc}</pre>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
