// Pipelines: the list, a pipeline's steps and runs, and a run drawn as a DAG whose
// step states update live. Step names are drawn as SVG text (never markup).
import {
  getPipeline,
  getPipelineRun,
  listPipelineRuns,
  listPipelines,
  type PipelineRun,
} from "../api/client";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";

const FINISHED = ["succeeded", "failed", "cancelled"];

export function Pipelines() {
  const pipelines = useLoad(listPipelines, [], 5000);
  return (
    <section>
      <h1>Pipelines</h1>
      {pipelines.error && <p class="error">{pipelines.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Steps</th>
            <th>Revision</th>
            <th>Updated</th>
          </tr>
        </thead>
        <tbody>
          {(pipelines.data ?? []).map((p) => (
            <tr key={p.id}>
              <td>
                <Link href={`/pipelines/${encodeURIComponent(p.name)}`}>{p.name}</Link>
              </td>
              <td>{p.steps.length}</td>
              <td>{p.revision}</td>
              <td>{p.updated_at}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {pipelines.data && !pipelines.data.length && (
        <p class="muted">No pipeline yet: `aimass pipelines create` or POST /api/v1/pipelines.</p>
      )}
    </section>
  );
}

export function PipelinePage(props: { name: string }) {
  const pipeline = useLoad(() => getPipeline(props.name), [props.name]);
  const runs = useLoad(() => listPipelineRuns(props.name, 50), [props.name], 3000);
  const p = pipeline.data;
  return (
    <section>
      <h1>
        Pipeline <span class="name">{props.name}</span>
      </h1>
      {pipeline.error && <p class="error">{pipeline.error}</p>}
      {p && (
        <Dag
          steps={p.steps.map((s) => ({
            name: s.name,
            needs: s.needs ?? [],
            state: "",
            detail: s.job ? s.job.entry : "action",
          }))}
        />
      )}
      <h2>Runs</h2>
      <table class="runs">
        <thead>
          <tr>
            <th>Run</th>
            <th>State</th>
            <th>Trigger</th>
            <th>Revision</th>
            <th>Created</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {(runs.data ?? []).map((r) => (
            <tr key={r.id}>
              <td>
                <Link href={`/pipelines/runs/${r.id}`}>{r.id}</Link>
              </td>
              <td>
                <span class={`state ${r.state}`}>{r.state}</span>
              </td>
              <td>{r.trigger}</td>
              <td>{r.revision}</td>
              <td>{r.created_at}</td>
              <td>{r.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function RunPage(props: { id: number }) {
  const run = useLoad(() => getPipelineRun(props.id), [props.id], 2000);
  const r: PipelineRun | undefined = run.data;
  if (run.error && !r) return <p class="error">{run.error}</p>;
  if (!r) return <p class="loading">Loading…</p>;
  return (
    <section>
      <h1>
        Run {r.id} of <Link href={`/pipelines/${encodeURIComponent(r.pipeline)}`}>{r.pipeline}</Link>
      </h1>
      <p>
        <span class={`state ${r.state}`} data-testid="run-state">
          {r.state}
        </span>{" "}
        {FINISHED.includes(r.state) ? "" : "· live"} {r.reason ?? ""}
      </p>
      <Dag
        steps={r.steps.map((s) => ({
          name: s.name,
          needs: s.needs,
          state: s.state,
          detail: s.state,
          job: s.job_id ?? undefined,
        }))}
      />
      <h2>Steps</h2>
      <table>
        <thead>
          <tr>
            <th>Step</th>
            <th>State</th>
            <th>Job</th>
            <th>Needs</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {r.steps.map((s) => (
            <tr key={s.name} data-step={s.name}>
              <td>{s.name}</td>
              <td>
                <span class={`state ${s.state}`}>{s.state}</span>
              </td>
              <td>{s.job_id ? <Link href={`/jobs/${s.job_id}`}>{s.job_id}</Link> : "–"}</td>
              <td>{s.needs.join(", ")}</td>
              <td>{s.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface Node {
  name: string;
  needs: string[];
  state: string;
  detail: string;
  job?: number;
}

const W = 160;
const H = 44;
const GAP_X = 60;
const GAP_Y = 20;

/** Steps in columns by depth (a step sits right of everything it needs), edges as curves. */
export function Dag(props: { steps: Node[] }) {
  const byName = new Map(props.steps.map((s) => [s.name, s]));
  const depth = new Map<string, number>();
  const depthOf = (name: string, trail: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (trail.has(name)) return 0; // a cycle (the server refuses them): do not loop
    trail.add(name);
    const needs = (byName.get(name)?.needs ?? []).filter((n) => byName.has(n));
    const d = needs.length ? 1 + Math.max(...needs.map((n) => depthOf(n, trail))) : 0;
    depth.set(name, d);
    return d;
  };
  const columns: string[][] = [];
  for (const s of props.steps) (columns[depthOf(s.name, new Set())] ??= []).push(s.name);
  const at = new Map<string, { x: number; y: number }>();
  columns.forEach((names, c) =>
    names.forEach((name, i) => at.set(name, { x: 10 + c * (W + GAP_X), y: 10 + i * (H + GAP_Y) })),
  );
  const width = 20 + columns.length * (W + GAP_X) - GAP_X;
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  return (
    <svg class="dag" width={width} height={height} viewBox={`0 0 ${width} ${height}`} data-testid="dag">
      {props.steps.flatMap((s) =>
        s.needs
          .filter((n) => at.has(n))
          .map((n) => {
            const a = at.get(n)!;
            const b = at.get(s.name)!;
            const x1 = a.x + W;
            const y1 = a.y + H / 2;
            const x2 = b.x;
            const y2 = b.y + H / 2;
            const mid = (x1 + x2) / 2;
            return <path key={`${n}->${s.name}`} d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`} />;
          }),
      )}
      {props.steps.map((s) => {
        const p = at.get(s.name)!;
        return (
          <g
            key={s.name}
            class={s.state}
            data-step={s.name}
            data-state={s.state}
            transform={`translate(${p.x},${p.y})`}
            onClick={() => s.job && navigate(`/jobs/${s.job}`)}
          >
            <rect width={W} height={H} rx={6} />
            <text x={8} y={18}>
              {s.name.length > 20 ? `${s.name.slice(0, 19)}…` : s.name}
            </text>
            <text x={8} y={35} class="step-state">
              {s.detail}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
