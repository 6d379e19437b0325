import type { listEvents } from "../api/client";

type Event = Awaited<ReturnType<typeof listEvents>>[number];

/** A table of platform events (the overview's and the monitoring pages'). */
export function EventRows(props: { events: Event[]; empty?: string }) {
  if (!props.events.length) return <p class="muted">{props.empty ?? "None."}</p>;
  return (
    <table class="events">
      <thead>
        <tr>
          <th>Time</th>
          <th>Kind</th>
          <th>Subject</th>
          <th>Severity</th>
          <th>Message</th>
        </tr>
      </thead>
      <tbody>
        {props.events.map((e) => (
          <tr key={e.id}>
            <td>{e.created_at}</td>
            <td>{e.kind}</td>
            <td>{e.subject}</td>
            <td>{e.severity}</td>
            <td>{e.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
