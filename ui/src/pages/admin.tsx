import { useState } from "preact/hooks";
import {
  createProject,
  createToken,
  listProjects,
  listTokens,
  revokeToken,
  type TokenWithSecret,
} from "../api/client";
import { useIsAdmin } from "../auth";
import { messageOf, useLoad } from "../hooks";

type Role = "viewer" | "editor" | "admin";

export function Admin() {
  const isAdmin = useIsAdmin();
  const tokens = useLoad(() => (isAdmin ? listTokens() : Promise.resolve([])), [isAdmin]);
  const projects = useLoad(listProjects, []);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [project, setProject] = useState("");
  const [created, setCreated] = useState<TokenWithSecret | null>(null);
  const [projectName, setProjectName] = useState("");
  const [error, setError] = useState<string | null>(null);
  if (!isAdmin)
    return (
      <section>
        <h1>Tokens and projects</h1>
        <p>Only an admin token manages tokens and projects.</p>
      </section>
    );
  const run = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  };
  return (
    <section>
      <h1>Tokens and projects</h1>
      {error && <p class="error">{error}</p>}
      <h2>Tokens</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            setCreated(await createToken({ name, role, project: project || null }));
            setName("");
            tokens.reload();
          });
        }}
      >
        <input name="token-name" placeholder="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <select name="role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
          <option value="viewer">viewer</option>
          <option value="editor">editor</option>
          <option value="admin">admin</option>
        </select>
        <select name="project" value={project} onChange={(e) => setProject(e.currentTarget.value)}>
          <option value="">all projects</option>
          {(projects.data ?? []).map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
        <button type="submit" disabled={!name}>
          Create token
        </button>
      </form>
      {created && (
        <div class="secret">
          <p>
            The secret of <b>{created.name}</b>, shown this once:
          </p>
          <code data-testid="secret">{created.secret}</code>{" "}
          <button type="button" class="link" onClick={() => setCreated(null)}>
            I have kept it
          </button>
        </div>
      )}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Name</th>
            <th>Role</th>
            <th>Project</th>
            <th>Created</th>
            <th>Revoked</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(tokens.data ?? []).map((t) => (
            <tr key={t.id}>
              <td>{t.id}</td>
              <td>{t.name}</td>
              <td>{t.role}</td>
              <td>{t.project ?? "all"}</td>
              <td>{t.created_at}</td>
              <td>{t.revoked_at ?? ""}</td>
              <td>
                {!t.revoked_at && (
                  <button type="button" onClick={() => run(async () => { await revokeToken(t.id); tokens.reload(); })}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Projects</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            await createProject({ name: projectName });
            setProjectName("");
            projects.reload();
          });
        }}
      >
        <input name="project-name" placeholder="project name" value={projectName} onInput={(e) => setProjectName(e.currentTarget.value)} />
        <button type="submit" disabled={!projectName}>
          Create project
        </button>
      </form>
      <ul>
        {(projects.data ?? []).map((p) => (
          <li key={p.name}>{p.name}</li>
        ))}
      </ul>
    </section>
  );
}
