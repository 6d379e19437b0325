import { useEffect, useRef, useState } from "preact/hooks";
import {
  cancelJob,
  followLogs,
  getJob,
  type Job,
  jobCheckpoints,
  jobEvents,
  jobMetrics,
  type JobState,
  listJobs,
  retryJob,
} from "../api/client";
import { useCanWrite } from "../auth";
import { messageOf, useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { MetricChart } from "./chart";
import { JobRows } from "./jobrows";

const STATES: JobState[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const KINDS: Job["kind"][] = ["train", "evaluate", "batch_predict", "tune", "script"];
const PAGE = 50;
const LIVE: JobState[] = ["queued", "running"];

/** Jobs, filtered and paged on the server (keyset: each page asks for the jobs after a cursor). */
export function Jobs(props: { query: URLSearchParams }) {
  const q = props.query;
  const state = (q.get("state") || undefined) as JobState | undefined;
  const kind = (q.get("kind") || undefined) as Job["kind"] | undefined;
  const entry = q.get("entry") || undefined;
  const after = q.get("after") || undefined;
  const [trail, setTrail] = useState<(string | undefined)[]>([]);
  const page = useLoad(
    () => listJobs({ state, kind, entry, after, limit: PAGE }),
    [state, kind, entry, after],
    after ? undefined : 3000,
  );
  const go = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(q);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    const text = next.toString();
    navigate(text ? `/jobs?${text}` : "/jobs");
  };
  const filter = (changes: Record<string, string | undefined>) => {
    setTrail([]);
    go({ ...changes, after: undefined });
  };
  return (
    <section>
      <h1>Jobs</h1>
      <div class="filters">
        <select
          name="state"
          value={state ?? ""}
          onChange={(e) => filter({ state: e.currentTarget.value })}
        >
          <option value="">any state</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select name="kind" value={kind ?? ""} onChange={(e) => filter({ kind: e.currentTarget.value })}>
          <option value="">any kind</option>
          {KINDS.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <input
          name="entry"
          placeholder="entry"
          value={entry ?? ""}
          onChange={(e) => filter({ entry: e.currentTarget.value })}
        />
      </div>
      {page.error && <p class="error">{page.error}</p>}
      <JobRows jobs={page.data?.jobs ?? []} />
      <div class="pager">
        <button
          type="button"
          disabled={!after}
          onClick={() => {
            const back = trail[trail.length - 1];
            setTrail(trail.slice(0, -1));
            go({ after: back });
          }}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!page.data?.next}
          onClick={() => {
            setTrail([...trail, after]);
            go({ after: page.data?.next ?? undefined });
          }}
        >
          Older
        </button>
      </div>
    </section>
  );
}

const MAX_LINES = 5000;

function attemptOf(data: string): string {
  try {
    return String((JSON.parse(data) as { attempt?: number }).attempt ?? data);
  } catch {
    return data;
  }
}

function LogView(props: { id: number }) {
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState("following");
  const pane = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const abort = new AbortController();
    setLines([]);
    let pending: string[] = [];
    let timer: number | undefined;
    const flush = () => {
      timer = undefined;
      const add = pending;
      pending = [];
      setLines((old) => {
        const all = old.concat(add);
        return all.length > MAX_LINES ? all.slice(all.length - MAX_LINES) : all;
      });
    };
    followLogs(
      props.id,
      (e) => {
        if (e.event === "log") pending.push(e.data);
        else if (e.event === "attempt") pending.push(`── attempt ${attemptOf(e.data)} ──`);
        else if (e.event === "end") setStatus("ended");
        // One render per animation frame however fast lines come.
        if (timer === undefined) timer = requestAnimationFrame(flush);
      },
      abort.signal,
    ).catch((err: unknown) => setStatus(messageOf(err)));
    return () => {
      abort.abort();
      if (timer !== undefined) cancelAnimationFrame(timer);
    };
  }, [props.id]);
  useEffect(() => {
    const el = pane.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <div>
      <pre class="logs" ref={pane} data-testid="logs">
        {lines.map((l, i) => (
          <div key={i} class="line">
            {l}
          </div>
        ))}
      </pre>
      <div class="muted">log: {status}</div>
    </div>
  );
}

function Metrics(props: { id: number; live: boolean }) {
  const metrics = useLoad(() => jobMetrics(props.id), [props.id], props.live ? 1000 : undefined);
  const byName = new Map<string, { steps: number[]; values: number[] }>();
  for (const m of metrics.data ?? []) {
    let s = byName.get(m.name);
    if (!s) byName.set(m.name, (s = { steps: [], values: [] }));
    s.steps.push(m.step);
    s.values.push(m.value);
  }
  if (byName.size === 0) return <p class="muted">No metrics yet.</p>;
  return (
    <div class="charts">
      {[...byName].map(([name, s]) => (
        <MetricChart key={name} name={name} steps={s.steps} values={s.values} />
      ))}
    </div>
  );
}

export function JobPage(props: { id: number }) {
  const canWrite = useCanWrite();
  const job = useLoad(() => getJob(props.id), [props.id], 1000);
  const live = job.data ? LIVE.includes(job.data.state) : true;
  const events = useLoad(() => jobEvents(props.id), [props.id, job.data?.state, job.data?.attempt]);
  const checkpoints = useLoad(() => jobCheckpoints(props.id), [props.id, job.data?.state]);
  const [error, setError] = useState<string | null>(null);
  const act = async (fn: (id: number) => Promise<Job>) => {
    try {
      await fn(props.id);
      setError(null);
      job.reload();
    } catch (e) {
      setError(messageOf(e));
    }
  };
  if (job.error && !job.data) return <p class="error">{job.error}</p>;
  const j = job.data;
  if (!j) return <p class="loading">Loading…</p>;
  const registered = (j.outputs as Record<string, unknown> | undefined)?.model;
  return (
    <section>
      <h1>
        Job {j.id} <span class={`state ${j.state}`} data-testid="job-state">{j.state}</span>
      </h1>
      <dl class="facts">
        <dt>Entry</dt>
        <dd>
          {j.kind} {j.entry}
        </dd>
        <dt>Params</dt>
        <dd>
          <code>{JSON.stringify(j.params)}</code>
        </dd>
        <dt>Dataset</dt>
        <dd>{j.dataset ? `${j.dataset} v${j.dataset_version ?? "latest"}` : "–"}</dd>
        <dt>Attempt</dt>
        <dd>
          {j.attempt} (retries used {j.retries_used}/{j.max_retries})
        </dd>
        {j.reason && (
          <>
            <dt>Reason</dt>
            <dd>{j.reason}</dd>
          </>
        )}
        {typeof registered === "string" && (
          <>
            <dt>Registered</dt>
            <dd>
              <Link href={`/models/${encodeURIComponent(registered)}`}>{registered}</Link>
            </dd>
          </>
        )}
      </dl>
      {canWrite && (
        <div class="actions">
          {live && (
            <button type="button" onClick={() => act(cancelJob)}>
              Cancel
            </button>
          )}
          {(j.state === "failed" || j.state === "cancelled") && (
            <button type="button" onClick={() => act(retryJob)}>
              Retry
            </button>
          )}
          {error && <span class="error">{error}</span>}
        </div>
      )}
      <h2>Logs</h2>
      <LogView id={j.id} />
      <h2>Metrics</h2>
      <Metrics id={j.id} live={live} />
      <h2>Attempts and events</h2>
      <table>
        <thead>
          <tr>
            <th>At</th>
            <th>Attempt</th>
            <th>State</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {(events.data ?? []).map((e, i) => (
            <tr key={i}>
              <td>{e.at}</td>
              <td>{e.attempt}</td>
              <td>{e.state}</td>
              <td>{e.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Checkpoints</h2>
      {(checkpoints.data ?? []).length === 0 ? (
        <p class="muted">None saved.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Step</th>
              <th>Attempt</th>
              <th>At</th>
              <th>sha256</th>
            </tr>
          </thead>
          <tbody>
            {(checkpoints.data ?? []).map((c) => (
              <tr key={c.artifact_key}>
                <td>{c.step}</td>
                <td>{c.attempt}</td>
                <td>{c.at}</td>
                <td class="name">{c.sha256.slice(0, 12)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Outputs</h2>
      <pre class="json">{JSON.stringify(j.outputs ?? {}, null, 1)}</pre>
    </section>
  );
}
