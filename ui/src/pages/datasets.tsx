import { useState } from "preact/hooks";
import {
  type DatasetVersion,
  listDatasets,
  listDatasetVersions,
  uploadDatasetVersion,
} from "../api/client";
import { useCanWrite } from "../auth";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { DropUpload } from "./models";

export function Datasets() {
  const canWrite = useCanWrite();
  const datasets = useLoad(listDatasets, []);
  return (
    <section>
      <h1>Datasets</h1>
      {datasets.error && <p class="error">{datasets.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Latest</th>
            <th>Description</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {(datasets.data ?? []).map((d) => (
            <tr key={d.id}>
              <td>
                <Link href={`/datasets/${encodeURIComponent(d.name)}`}>{d.name}</Link>
              </td>
              <td>{d.latest_version ?? "–"}</td>
              <td>{d.description}</td>
              <td>{d.created_at}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {canWrite && (
        <>
          <h2>Upload a dataset (CSV, Parquet, JSON lines)</h2>
          <DropUpload
            label="Dataset name"
            send={uploadDatasetVersion}
            onDone={(v) => navigate(`/datasets/${encodeURIComponent(v.dataset)}`)}
          />
        </>
      )}
    </section>
  );
}

function Bars(props: { counts: number[]; labels: string[] }) {
  const top = Math.max(1, ...props.counts);
  return (
    <div class="bars">
      {props.counts.map((c, i) => (
        <div
          key={i}
          class="bar-col"
          title={`${props.labels[i] ?? ""}: ${c}`}
          ref={(el) => {
            // CSSOM, not a style attribute: the CSP refuses inline styles.
            if (el) el.style.height = `${Math.round((c / top) * 100)}%`;
          }}
        />
      ))}
    </div>
  );
}

function Profile(props: { v: DatasetVersion }) {
  const cols = props.v.profile?.columns ?? [];
  return (
    <table class="profile">
      <thead>
        <tr>
          <th>Column</th>
          <th>Type</th>
          <th>Missing</th>
          <th>Min / mean / max</th>
          <th>Distribution</th>
        </tr>
      </thead>
      <tbody>
        {cols.map((c) => {
          const h = c.histogram;
          const top = (c as { top?: { value: string; count: number }[] }).top;
          return (
            <tr key={c.name}>
              <td class="name">{c.name}</td>
              <td>{c.dtype}</td>
              <td>
                {c.missing} / {c.count}
              </td>
              <td>
                {c.min ?? "–"} / {c.mean === null || c.mean === undefined ? "–" : c.mean.toFixed(3)} /{" "}
                {c.max ?? "–"}
              </td>
              <td>
                {h && h.counts.length > 0 ? (
                  <Bars
                    counts={h.counts}
                    labels={h.counts.map((_, i) => `${h.edges[i]}–${h.edges[i + 1]}`)}
                  />
                ) : top && top.length > 0 ? (
                  <Bars counts={top.map((t) => t.count)} labels={top.map((t) => t.value)} />
                ) : (
                  ""
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function DatasetPage(props: { name: string }) {
  const canWrite = useCanWrite();
  const versions = useLoad(() => listDatasetVersions(props.name), [props.name]);
  const [picked, setPicked] = useState<number | null>(null);
  const list = [...(versions.data ?? [])].sort((a, b) => b.version - a.version);
  const v = list.find((x) => x.version === picked) ?? list[0];
  return (
    <section>
      <h1>
        Dataset <span class="name">{props.name}</span>
      </h1>
      {versions.error && <p class="error">{versions.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Version</th>
            <th>Format</th>
            <th>File</th>
            <th>Rows</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {list.map((x) => (
            <tr key={x.id} class={x === v ? "picked" : ""} onClick={() => setPicked(x.version)}>
              <td>{x.version}</td>
              <td>{x.format}</td>
              <td>{x.filename}</td>
              <td>{x.num_rows}</td>
              <td>{x.created_at}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {v && (
        <>
          <h2>Version {v.version}: schema and profile</h2>
          <Profile v={v} />
        </>
      )}
      {canWrite && (
        <>
          <h2>Upload a new version</h2>
          <DropUpload
            fixed={props.name}
            label="Dataset name"
            send={uploadDatasetVersion}
            onDone={versions.reload}
          />
        </>
      )}
    </section>
  );
}
