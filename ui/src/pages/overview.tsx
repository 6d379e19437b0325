import { listDeployments, listJobs, requestCounts } from "../api/client";
import { useLoad } from "../hooks";
import { Link } from "../router";
import { JobRows } from "./jobs";

const LIVE_MS = 2000;

export function Overview() {
  const running = useLoad(() => listJobs({ state: "running", limit: 20 }), [], LIVE_MS);
  const queued = useLoad(() => listJobs({ state: "queued", limit: 20 }), [], LIVE_MS);
  const recent = useLoad(() => listJobs({ limit: 10 }), [], LIVE_MS);
  const deployments = useLoad(listDeployments, [], LIVE_MS);
  const counts = useLoad(() => requestCounts().catch(() => ({}) as Record<string, number>), [], LIVE_MS);
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
      </div>
      <h2>Deployments</h2>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Model</th>
            <th>State</th>
            <th>Replicas ready</th>
            <th>Requests</th>
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
              <td>{counts.data?.[d.name] ?? 0}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Recent jobs</h2>
      <JobRows jobs={recent.data?.jobs ?? []} />
      {(running.error || deployments.error) && (
        <p class="error">{running.error ?? deployments.error}</p>
      )}
    </section>
  );
}
