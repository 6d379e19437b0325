import type { Job } from "../api/client";
import { Link } from "../router";

/** A table of jobs (the overview's and the jobs page's). */
export function JobRows(props: { jobs: Job[] }) {
  return (
    <table class="jobs">
      <thead>
        <tr>
          <th>Id</th>
          <th>Entry</th>
          <th>Kind</th>
          <th>State</th>
          <th>Attempt</th>
          <th>Created</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        {props.jobs.map((j) => (
          <tr key={j.id} data-state={j.state}>
            <td>
              <Link href={`/jobs/${j.id}`}>{j.id}</Link>
            </td>
            <td>{j.entry}</td>
            <td>{j.kind}</td>
            <td>
              <span class={`state ${j.state}`}>{j.state}</span>
            </td>
            <td>{j.attempt}</td>
            <td>{j.created_at}</td>
            <td>{j.reason ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
