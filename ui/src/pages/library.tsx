import { useState } from "preact/hooks";
import { ApiError, listZoo, submitJob, type ZooEntry } from "../api/client";
import { useCanWrite } from "../auth";
import { messageOf, useLoad } from "../hooks";
import { Link, navigate } from "../router";

/** The model library by family, then task, with a train button per entry. */
export function Library() {
  const canWrite = useCanWrite();
  const zoo = useLoad(listZoo, []);
  const families = new Map<string, Map<string, ZooEntry[]>>();
  for (const e of zoo.data ?? []) {
    const fam = e.family ?? "other";
    const task = e.task ?? "other";
    if (!families.has(fam)) families.set(fam, new Map());
    const tasks = families.get(fam)!;
    if (!tasks.has(task)) tasks.set(task, []);
    tasks.get(task)!.push(e);
  }
  return (
    <section>
      <h1>Model library</h1>
      {zoo.error && <p class="error">{zoo.error}</p>}
      {[...families].map(([fam, tasks]) => (
        <div key={fam} class="family">
          <h2>{fam}</h2>
          {[...tasks].map(([task, entries]) => (
            <div key={task}>
              <h3>{task}</h3>
              <table>
                <tbody>
                  {entries.map((e) => (
                    <tr key={e.name} data-entry={e.name}>
                      <td class="name">{e.name}</td>
                      <td>{e.description}</td>
                      <td>{e.default_dataset ?? ""}</td>
                      <td>
                        {canWrite && (e.kinds ?? []).includes("train") && (
                          <Link class="button" href={`/library/${encodeURIComponent(e.name)}`}>
                            Train
                          </Link>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ))}
        </div>
      ))}
    </section>
  );
}

interface FieldSchema {
  type?: string;
  anyOf?: FieldSchema[];
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  description?: string;
  title?: string;
}

/** The one non-null alternative of ``s`` (pydantic writes ``X | None`` as anyOf). */
function core(s: FieldSchema): FieldSchema & { nullable: boolean } {
  const alts = s.anyOf?.filter((a) => a.type !== "null");
  if (s.anyOf && alts && alts.length === 1) return { ...alts[0], ...pick(s), nullable: true };
  return { ...s, nullable: false };
}

function pick(s: FieldSchema): FieldSchema {
  return { default: s.default, description: s.description, title: s.title };
}

function bounds(s: FieldSchema): string {
  const parts: string[] = [];
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  return parts.join(", ");
}

function initial(s: FieldSchema): string {
  return s.default === undefined || s.default === null ? "" : String(s.default);
}

/** A form generated from the entry's params schema; the server's 422 shows at the field. */
export function SubmitForm(props: { entry: string }) {
  const zoo = useLoad(listZoo, []);
  const entry = zoo.data?.find((e) => e.name === props.entry);
  if (zoo.error) return <p class="error">{zoo.error}</p>;
  if (!zoo.data) return <p class="loading">Loading…</p>;
  if (!entry) return <p class="error">No library entry named {props.entry}.</p>;
  return <EntryForm entry={entry} />;
}

function EntryForm(props: { entry: ZooEntry }) {
  const canWrite = useCanWrite();
  const { entry } = props;
  const schema = entry.params_schema as { properties?: Record<string, FieldSchema> };
  const fields = Object.entries(schema.properties ?? {}).map(
    ([name, s]) => [name, core(s)] as const,
  );
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(fields.map(([n, s]) => [n, initial(s)])),
  );
  const [dataset, setDataset] = useState(entry.default_dataset ?? "");
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const params: Record<string, unknown> = {};
    for (const [name, s] of fields) {
      const raw = values[name];
      if (raw === "" || raw === undefined) continue;
      if (raw === initial(s)) continue; // the server fills defaults
      if (s.type === "integer" || s.type === "number") params[name] = Number(raw);
      else if (s.type === "boolean") params[name] = raw === "true";
      else params[name] = raw;
    }
    setBusy(true);
    try {
      const job = await submitJob({
        kind: "train",
        entry: entry.name,
        params: params as Record<string, never>,
        dataset: entry.needs_dataset ? dataset || null : null,
        priority: 0,
        max_retries: 0,
      });
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      const byField = err instanceof ApiError ? err.paramErrors() : {};
      setFieldErrors(byField);
      setError(Object.keys(byField).length ? null : messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>
        Train <span class="name">{entry.name}</span>
      </h1>
      <p>{entry.description}</p>
      <form class="params" onSubmit={submit}>
        {entry.needs_dataset && (
          <label class="field">
            <span>dataset</span>
            <input name="dataset" value={dataset} onInput={(e) => setDataset(e.currentTarget.value)} />
          </label>
        )}
        {fields.map(([name, s]) => (
          <label class="field" key={name} data-field={name}>
            <span>{name}</span>
            {s.enum ? (
              <select
                name={name}
                value={values[name]}
                onChange={(e) => setValues({ ...values, [name]: e.currentTarget.value })}
              >
                {s.nullable && <option value="">(none)</option>}
                {s.enum.map((v) => (
                  <option key={String(v)} value={String(v)}>
                    {String(v)}
                  </option>
                ))}
              </select>
            ) : s.type === "boolean" ? (
              <select
                name={name}
                value={values[name]}
                onChange={(e) => setValues({ ...values, [name]: e.currentTarget.value })}
              >
                <option value="true">true</option>
                <option value="false">false</option>
              </select>
            ) : (
              <input
                name={name}
                type={s.type === "integer" || s.type === "number" ? "number" : "text"}
                step={s.type === "integer" ? 1 : "any"}
                value={values[name]}
                placeholder={s.nullable ? "(optional)" : ""}
                onInput={(e) => setValues({ ...values, [name]: e.currentTarget.value })}
              />
            )}
            <small class="muted">
              {[s.type, bounds(s), s.description].filter(Boolean).join(" · ")}
            </small>
            {fieldErrors[name] && <small class="error field-error">{fieldErrors[name]}</small>}
          </label>
        ))}
        {canWrite && (
          <button type="submit" class="primary" disabled={busy}>
            Submit job
          </button>
        )}
        {error && <p class="error">{error}</p>}
      </form>
    </section>
  );
}
