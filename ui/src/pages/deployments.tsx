import { useEffect, useRef, useState } from "preact/hooks";
import {
  type Deployment,
  getDeployment,
  listDeployments,
  listVersions,
  type ModelVersion,
  predict,
  requestCounts,
  type TrafficRoute,
  updateDeployment,
} from "../api/client";
import { useCanWrite } from "../auth";
import { messageOf, useLoad } from "../hooks";
import { Link } from "../router";

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

/** Requests a second to ``name``, from successive polls of the totals. */
function useRate(counts: Record<string, number> | undefined, name: string): number | null {
  const last = useRef<{ total: number; at: number } | null>(null);
  const [rate, setRate] = useState<number | null>(null);
  useEffect(() => {
    if (counts === undefined) return;
    const total = counts[name] ?? 0;
    const now = performance.now();
    if (last.current && now > last.current.at) {
      setRate(((total - last.current.total) * 1000) / (now - last.current.at));
    }
    last.current = { total, at: now };
  }, [counts]);
  return rate;
}

export function DeploymentPage(props: { name: string }) {
  const canWrite = useCanWrite();
  const d = useLoad(() => getDeployment(props.name), [props.name], 2000);
  const counts = useLoad(requestCounts, [], 1000);
  const rate = useRate(counts.data, props.name);
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
        <dd data-testid="request-count">{counts.data?.[dep.name] ?? 0}</dd>
        <dt>Requests/s</dt>
        <dd>{rate === null ? "…" : rate.toFixed(1)}</dd>
        <dt>Batching</dt>
        <dd>
          up to {dep.batching?.max_batch_size} rows, waits {dep.batching?.max_delay_ms} ms
        </dd>
        <dt>Revision</dt>
        <dd>{dep.revision}</dd>
      </dl>
      <h2>Replicas</h2>
      <table>
        <thead>
          <tr>
            <th>Replica</th>
            <th>State</th>
            <th>Versions</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {(dep.replica_status ?? []).map((r) => (
            <tr key={r.replica}>
              <td>{r.replica}</td>
              <td>{r.state}</td>
              <td>{r.versions?.join(", ")}</td>
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
