import { useState } from "preact/hooks";
import {
  compareVersions,
  createDeployment,
  exportBundle,
  importBundle,
  listModels,
  listVersions,
  type ModelVersion,
  searchVersions,
  setAlias,
  uploadVersion,
} from "../api/client";
import { useCanWrite } from "../auth";
import { messageOf, useLoad } from "../hooks";
import { Link, navigate } from "../router";

/** Drop a model file here (or pick one): uploads it as a new version with a progress bar. */
export function UploadBox(props: { model?: string; onDone: (v: ModelVersion) => void }) {
  return <DropUpload fixed={props.model} label="Model name" send={uploadVersion} onDone={props.onDone} />;
}

/** A name field (unless ``fixed``) and a drop zone that uploads with a progress bar. */
export function DropUpload<T>(props: {
  fixed?: string;
  label: string;
  /** Without a typed name: the file's name (default), or none (``false``). */
  nameFromFile?: boolean;
  send: (name: string, file: File, onProgress: (f: number) => void) => Promise<T>;
  onDone: (made: T) => void;
}) {
  const [name, setName] = useState(props.fixed ?? "");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [over, setOver] = useState(false);
  const send = async (file: File) => {
    const target =
      name.trim() || (props.nameFromFile === false ? "" : file.name.replace(/\.[^.]+$/, ""));
    setError(null);
    setProgress(0);
    try {
      props.onDone(await props.send(target, file, setProgress));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setProgress(null);
    }
  };
  return (
    <div class="upload">
      {!props.fixed && (
        <label>
          {props.label}
          <input
            name="upload-name"
            value={name}
            placeholder={props.nameFromFile === false ? "as in the file" : "from the file name"}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
      )}
      <div
        class={over ? "dropzone over" : "dropzone"}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          const file = e.dataTransfer?.files[0];
          if (file) void send(file);
        }}
      >
        Drop a file here, or{" "}
        <label class="pick">
          choose one
          <input
            type="file"
            class="hidden"
            onChange={(e) => {
              const file = e.currentTarget.files?.[0];
              if (file) void send(file);
            }}
          />
        </label>
      </div>
      {progress !== null && (
        <progress class="bar" value={progress} max={1}>
          {Math.round(progress * 100)}%
        </progress>
      )}
      {error && <p class="error">{error}</p>}
    </div>
  );
}

export function Models() {
  const [name, setName] = useState("");
  const [tag, setTag] = useState("");
  const [flavor, setFlavor] = useState("");
  const canWrite = useCanWrite();
  const models = useLoad(
    () =>
      listModels({
        name: name || undefined,
        tag: tag ? [tag] : undefined,
        flavor: flavor || undefined,
        limit: 200,
      }),
    [name, tag, flavor],
  );
  return (
    <section>
      <h1>Models</h1>
      <div class="filters">
        <input placeholder="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <input placeholder="tag key=value" value={tag} onInput={(e) => setTag(e.currentTarget.value)} />
        <input placeholder="flavor" value={flavor} onInput={(e) => setFlavor(e.currentTarget.value)} />
      </div>
      {models.error && <p class="error">{models.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Latest</th>
            <th>Aliases</th>
            <th>Tags</th>
            <th>Updated</th>
          </tr>
        </thead>
        <tbody>
          {(models.data ?? []).map((m) => (
            <tr key={m.id}>
              <td>
                <Link href={`/models/${encodeURIComponent(m.name)}`}>{m.name}</Link>
              </td>
              <td>{m.latest_version ?? "–"}</td>
              <td>
                {Object.entries(m.aliases ?? {}).map(([a, v]) => (
                  <span class="chip" key={a}>
                    {a}→{String(v)}
                  </span>
                ))}
              </td>
              <td>
                {Object.entries(m.tags ?? {}).map(([k, v]) => (
                  <span class="chip" key={k}>
                    {k}={String(v)}
                  </span>
                ))}
              </td>
              <td>{m.updated_at}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <VersionSearch />
      {canWrite && (
        <>
          <h2>Upload a model</h2>
          <UploadBox onDone={(v) => navigate(`/models/${encodeURIComponent(v.model)}`)} />
          <h2>Import a bundle</h2>
          <div data-testid="bundle-import">
            <DropUpload
              label="Import as model (optional)"
              nameFromFile={false}
              send={importBundle}
              onDone={(v) => navigate(`/models/${encodeURIComponent(v.model)}`)}
            />
          </div>
        </>
      )}
    </section>
  );
}

/** Versions across models by metric (``accuracy>=0.9``) and alias. */
function VersionSearch() {
  const [metric, setMetric] = useState("");
  const [alias, setAliasFilter] = useState("");
  const found = useLoad(
    () =>
      metric || alias
        ? searchVersions({ metric: metric ? [metric] : undefined, alias: alias || undefined, limit: 100 })
        : Promise.resolve([] as ModelVersion[]),
    [metric, alias],
  );
  return (
    <>
      <h2>Find versions</h2>
      <div class="filters">
        <input
          name="metric"
          placeholder="metric, e.g. accuracy>=0.9"
          value={metric}
          onChange={(e) => setMetric(e.currentTarget.value)}
        />
        <input
          name="alias"
          placeholder="alias"
          value={alias}
          onChange={(e) => setAliasFilter(e.currentTarget.value)}
        />
      </div>
      {found.error && <p class="error">{found.error}</p>}
      {(found.data ?? []).length > 0 && (
        <table class="found">
          <thead>
            <tr>
              <th>Model</th>
              <th>Version</th>
              <th>Metrics</th>
              <th>Aliases</th>
            </tr>
          </thead>
          <tbody>
            {(found.data ?? []).map((v) => (
              <tr key={v.id}>
                <td>
                  <Link href={`/models/${encodeURIComponent(v.model)}`}>{v.model}</Link>
                </td>
                <td>{v.version}</td>
                <td>
                  {Object.entries(v.metrics ?? {})
                    .map(([k, x]) => `${k}=${x}`)
                    .join(", ")}
                </td>
                <td>{(v.aliases ?? []).join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function DeployButton(props: { v: ModelVersion }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const { v } = props;
  if (!confirming)
    return (
      <button type="button" onClick={() => setConfirming(true)}>
        Deploy
      </button>
    );
  const deploy = async () => {
    try {
      const d = await createDeployment({ model: v.model, version: v.version, replicas: 1 });
      navigate(`/deployments/${encodeURIComponent(d.name)}`);
    } catch (e) {
      setError(messageOf(e));
    }
  };
  return (
    <span>
      <button type="button" class="primary" onClick={deploy}>
        Deploy version {v.version} now
      </button>
      <button type="button" class="link" onClick={() => setConfirming(false)}>
        cancel
      </button>
      {error && <span class="error">{error}</span>}
    </span>
  );
}

/** Download the version as a portable bundle file (a read: viewers may too). */
function ExportButton(props: { v: ModelVersion }) {
  const [error, setError] = useState<string | null>(null);
  const run = () =>
    exportBundle(props.v.model, props.v.version).then(
      () => setError(null),
      (e: unknown) => setError(messageOf(e)),
    );
  return (
    <>
      <button type="button" class="link" onClick={run}>
        Export
      </button>
      {error && <span class="error">{error}</span>}
    </>
  );
}

function Signature(props: { v: ModelVersion }) {
  const sig = props.v.signature;
  if (!sig) return <span class="muted">none</span>;
  const spec = (t: (typeof sig.inputs)[number]) =>
    `${t.name}: ${t.datatype}[${t.shape.join(", ")}]`;
  return (
    <div class="sig">
      <div>in: {(sig.inputs ?? []).map(spec).join("; ")}</div>
      <div>out: {(sig.outputs ?? []).map(spec).join("; ")}</div>
    </div>
  );
}

/** Evaluation reports of several versions on one dataset, side by side (best marked). */
function Compare(props: { model: string; versions: ModelVersion[] }) {
  const [picked, setPicked] = useState(props.versions.slice(0, 2).map((v) => v.version).join(","));
  const [dataset, setDataset] = useState(props.versions[0]?.lineage?.dataset ?? "");
  const [result, setResult] = useState<Awaited<ReturnType<typeof compareVersions>> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (e: Event) => {
    e.preventDefault();
    try {
      setResult(await compareVersions(props.model, picked, dataset));
      setError(null);
    } catch (err) {
      setResult(null);
      setError(messageOf(err));
    }
  };
  return (
    <form class="compare" onSubmit={run}>
      <div class="filters">
        <input name="compare-versions" value={picked} onInput={(e) => setPicked(e.currentTarget.value)} />
        <input
          name="compare-dataset"
          placeholder="evaluated on dataset"
          value={dataset}
          onInput={(e) => setDataset(e.currentTarget.value)}
        />
        <button type="submit" disabled={!picked || !dataset}>
          Compare
        </button>
      </div>
      {error && <p class="error">{error}</p>}
      {result && (
        <table>
          <thead>
            <tr>
              <th>Metric</th>
              {result.versions.map((v) => (
                <th key={v.version}>version {v.version}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {Object.keys(result.versions[0]?.metrics ?? {}).map((metric) => (
              <tr key={metric}>
                <td>{metric}</td>
                {result.versions.map((v) => (
                  <td key={v.version} class={result.best[metric] === String(v.version) ? "best" : ""}>
                    {v.metrics[metric]?.toFixed(4) ?? "–"}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </form>
  );
}

function AliasEditor(props: { model: string; versions: ModelVersion[]; onDone: () => void }) {
  const [alias, setAliasName] = useState("");
  const [version, setVersion] = useState(props.versions[0]?.version ?? 1);
  const [error, setError] = useState<string | null>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await setAlias(props.model, alias, version);
      setAliasName("");
      setError(null);
      props.onDone();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form class="inline" onSubmit={save}>
      <input placeholder="alias" value={alias} onInput={(e) => setAliasName(e.currentTarget.value)} />
      <select value={version} onChange={(e) => setVersion(Number(e.currentTarget.value))}>
        {props.versions.map((v) => (
          <option key={v.version} value={v.version}>
            version {v.version}
          </option>
        ))}
      </select>
      <button type="submit" disabled={!alias}>
        Move alias
      </button>
      {error && <span class="error">{error}</span>}
    </form>
  );
}

export function ModelPage(props: { name: string }) {
  const canWrite = useCanWrite();
  const versions = useLoad(() => listVersions(props.name), [props.name], 3000);
  const list = [...(versions.data ?? [])].sort((a, b) => b.version - a.version);
  const metricNames = [...new Set(list.flatMap((v) => Object.keys(v.metrics ?? {})))].sort();
  return (
    <section>
      <h1>
        Model <span class="name">{props.name}</span>
      </h1>
      {versions.error && <p class="error">{versions.error}</p>}
      <table class="versions">
        <thead>
          <tr>
            <th>Version</th>
            <th>Flavor</th>
            <th>Signature</th>
            {metricNames.map((m) => (
              <th key={m}>{m}</th>
            ))}
            <th>Tags</th>
            <th>Aliases</th>
            <th>Lineage</th>
            <th>Bundle</th>
            {canWrite && <th />}
          </tr>
        </thead>
        <tbody>
          {list.map((v) => (
            <tr key={v.id} data-version={v.version}>
              <td>{v.version}</td>
              <td>{v.flavor}</td>
              <td>
                <Signature v={v} />
              </td>
              {metricNames.map((m) => (
                <td key={m}>{v.metrics?.[m] === undefined ? "–" : String(v.metrics[m])}</td>
              ))}
              <td>
                {Object.entries(v.tags ?? {}).map(([k, t]) => (
                  <span class="chip" key={k}>
                    {k}={String(t)}
                  </span>
                ))}
              </td>
              <td>
                {(v.aliases ?? []).map((a) => (
                  <span class="chip" key={a}>
                    {a}
                  </span>
                ))}
              </td>
              <td>
                {v.lineage?.job_id ? (
                  <Link href={`/jobs/${v.lineage.job_id}`}>job {v.lineage.job_id}</Link>
                ) : (
                  "upload"
                )}
                {v.lineage?.dataset ? ` · ${v.lineage.dataset} v${v.lineage.dataset_version ?? "?"}` : ""}
              </td>
              <td>
                <ExportButton v={v} />
              </td>
              {canWrite && (
                <td>
                  <DeployButton v={v} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {list.length > 1 && (
        <>
          <h2>Compare evaluations</h2>
          <Compare model={props.name} versions={list} />
        </>
      )}
      {canWrite && list.length > 0 && (
        <>
          <h2>Aliases</h2>
          <AliasEditor model={props.name} versions={list} onDone={versions.reload} />
        </>
      )}
      {canWrite && (
        <>
          <h2>Upload a new version</h2>
          <UploadBox model={props.name} onDone={versions.reload} />
        </>
      )}
    </section>
  );
}
