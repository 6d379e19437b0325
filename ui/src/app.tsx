import { useEffect, useState } from "preact/hooks";
import { type Principal, session, whoami } from "./api/client";
import { Me } from "./auth";
import { messageOf } from "./hooks";
import { Admin } from "./pages/admin";
import { DatasetPage, Datasets } from "./pages/datasets";
import { DeploymentPage, Deployments } from "./pages/deployments";
import { JobPage, Jobs } from "./pages/jobs";
import { Library, SubmitForm } from "./pages/library";
import { ModelPage, Models } from "./pages/models";
import { Monitoring } from "./pages/monitoring";
import { Overview } from "./pages/overview";
import { Link, match, navigate, useLocation } from "./router";

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/models", "Models"],
  ["/deployments", "Deployments"],
  ["/jobs", "Jobs"],
  ["/library", "Model library"],
  ["/datasets", "Datasets"],
  ["/monitoring", "Monitoring"],
  ["/admin", "Tokens & projects"],
];

function SignIn(props: { onSignedIn: (p: Principal) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    session.signIn(token);
    try {
      props.onSignedIn(await whoami());
    } catch (err) {
      session.signOut();
      setError(messageOf(err));
    }
  };
  return (
    <main class="signin">
      <h1>aimass</h1>
      <form onSubmit={submit}>
        <label>
          Token
          <input
            name="token"
            type="password"
            autocomplete="off"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={!token.trim()}>
          Sign in
        </button>
        {error && <p class="error">{error}</p>}
        <p class="hint">
          The admin token is in the file that <code>aimass server</code> names at start.
        </p>
      </form>
    </main>
  );
}

function Page(props: { path: string; query: URLSearchParams }) {
  const { path, query } = props;
  let m: Record<string, string> | null;
  if (path === "/" || path === "") return <Overview />;
  if (path === "/models") return <Models />;
  if ((m = match("/models/:name", path))) return <ModelPage name={m.name} />;
  if (path === "/deployments") return <Deployments />;
  if ((m = match("/deployments/:name", path))) return <DeploymentPage name={m.name} />;
  if (path === "/jobs") return <Jobs query={query} />;
  if ((m = match("/jobs/:id", path))) return <JobPage id={Number(m.id)} />;
  if (path === "/library") return <Library />;
  if ((m = match("/library/:entry", path))) return <SubmitForm entry={m.entry} />;
  if (path === "/datasets") return <Datasets />;
  if ((m = match("/datasets/:name", path))) return <DatasetPage name={m.name} />;
  if (path.startsWith("/monitoring")) return <Monitoring />;
  if (path === "/admin") return <Admin />;
  return <p>No page at this address.</p>;
}

export function App() {
  const { path, query } = useLocation();
  const [me, setMe] = useState<Principal | null>(null);
  const [checking, setChecking] = useState(true);
  useEffect(() => {
    // Without a token this succeeds only on a server run with auth off.
    whoami()
      .then(setMe)
      .catch(() => session.signOut())
      .finally(() => setChecking(false));
  }, []);
  if (checking) return <p class="loading">Loading…</p>;
  if (!me) return <SignIn onSignedIn={setMe} />;
  const signOut = () => {
    session.signOut();
    setMe(null);
    navigate("/");
  };
  return (
    <Me.Provider value={me}>
      <div class="shell">
        <nav>
          <div class="brand">aimass</div>
          {NAV.map(([href, label]) => (
            <Link
              key={href}
              href={href}
              class={(href === "/" ? path === "/" : path.startsWith(href)) ? "active" : ""}
            >
              {label}
            </Link>
          ))}
          <div class="who">
            <span class="me">
              {me.name} ({me.role}
              {me.project ? ` on ${me.project}` : ""})
            </span>
            <button type="button" class="link" onClick={signOut}>
              Sign out
            </button>
          </div>
        </nav>
        <main>
          <Page path={path} query={query} />
        </main>
      </div>
    </Me.Provider>
  );
}
