export function Monitoring() {
  return (
    <section>
      <h1>Monitoring</h1>
      <p>
        Drift, prediction logs, node history, alerts and system logs come with the monitoring
        work; their pages will live here.
      </p>
    </section>
  );
}
