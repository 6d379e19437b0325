import { listDeployments, listEvents, listJobs, listNodes, type NodeStatus } from "../api/client";
import { useLoad } from "../hooks";
import { fmt, ratesBetween, useScrapes } from "../live";
import { Link } from "../router";
import { EventRows } from "./eventrows";
import { JobRows } from "./jobrows";

const LIVE_MS = 2000;

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Each node's latest sample: CPU, memory, GPU, and whether it stopped reporting. */
export function NodeRows(props: { nodes: NodeStatus[] }) {
  return (
    <table class="nodes">
      <thead>
        <tr>
          <th>Node</th>
          <th>State</th>
          <th>CPU</th>
          <th>Memory</th>
          <th>GPU</th>
          <th>Sampled</th>
        </tr>
      </thead>
      <tbody>
        {props.nodes.map(({ node, down, latest: s }) => (
          <tr key={node} data-node={node}>
            <td>
              <Link href={`/monitoring/nodes?node=${encodeURIComponent(node)}`}>{node}</Link>
            </td>
            <td>
              <span class={`state ${down ? "failed" : "succeeded"}`}>{down ? "down" : "up"}</span>
            </td>
            <td class="cpu">{s.cpu_percent.toFixed(1)} %</td>
            <td class="memory">
              {bytes(s.memory_used_bytes)} / {bytes(s.memory_total_bytes)}
            </td>
            <td>{s.gpu_percent === null || s.gpu_percent === undefined ? "–" : `${s.gpu_percent.toFixed(0)} %`}</td>
            <td>{s.at}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Overview() {
  const running = useLoad(() => listJobs({ state: "running", limit: 20 }), [], LIVE_MS);
  const queued = useLoad(() => listJobs({ state: "queued", limit: 20 }), [], LIVE_MS);
  const recent = useLoad(() => listJobs({ limit: 10 }), [], LIVE_MS);
  const deployments = useLoad(listDeployments, [], LIVE_MS);
  const nodes = useLoad(listNodes, [], LIVE_MS);
  const events = useLoad(() => listEvents({ limit: 10 }), [], LIVE_MS);
  const { prev, now } = useScrapes(LIVE_MS);
  return (
    <section>
      <h1>Overview</h1>
      <div class="cards">
        <div class="card">
          <div class="figure">{running.data?.jobs.length ?? "…"}</div>
          <div>running jobs</div>
        </div>
        <div class="card">
          <div class="figure">{queued.data?.jobs.length ?? "…"}</div>
          <div>queued jobs</div>
        </div>
        <div class="card">
          <div class="figure">{deployments.data?.length ?? "…"}</div>
          <div>deployments</div>
        </div>
        <div class="card">
          <div class="figure">{nodes.data?.filter((n) => !n.down).length ?? "…"}</div>
          <div>nodes up</div>
        </div>
      </div>
      <h2>Nodes</h2>
      <NodeRows nodes={nodes.data ?? []} />
      <h2>Deployments</h2>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Model</th>
            <th>State</th>
            <th>Replicas ready</th>
            <th>Requests</th>
            <th>req/s</th>
            <th>p50</th>
            <th>p99</th>
            <th>Errors</th>
          </tr>
        </thead>
        <tbody>
          {(deployments.data ?? []).map((d) => (
            <tr key={d.id}>
              <td>
                <Link href={`/deployments/${encodeURIComponent(d.name)}`}>{d.name}</Link>
              </td>
              <td>{d.model}</td>
              <td>{d.state}</td>
              <td>
                {(d.replica_status ?? []).filter((r) => r.state === "ready").length}/{d.replicas}
              </td>
              {(() => {
                const r = now ? ratesBetween(prev, now, d.name) : null;
                return (
                  <>
                    <td class="requests">{r?.total ?? "…"}</td>
                    <td class="rps">{fmt(r?.rps, 1)}</td>
                    <td class="p50">{fmt(r?.p50, 1, " ms")}</td>
                    <td class="p99">{fmt(r?.p99, 1, " ms")}</td>
                    <td>{fmt(r?.errorRate === null || r?.errorRate === undefined ? null : r.errorRate * 100, 1, " %")}</td>
                  </>
                );
              })()}
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Recent jobs</h2>
      <JobRows jobs={recent.data?.jobs ?? []} />
      <h2>Recent events</h2>
      {events.data && <EventRows events={events.data} empty="None yet." />}
      {(running.error || deployments.error || nodes.error) && (
        <p class="error">{running.error ?? deployments.error ?? nodes.error}</p>
      )}
    </section>
  );
}
