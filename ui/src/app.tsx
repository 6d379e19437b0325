import { useEffect, useState } from "preact/hooks";
import { type Principal, session, whoami } from "./api/client";
import { Me } from "./auth";
import { messageOf } from "./hooks";
import { lazy } from "./lazy";
import { Overview } from "./pages/overview";
import { Link, match, navigate, useLocation } from "./router";

// Every page but the overview is its own chunk, loaded on its first visit.
const Admin = lazy(() => import("./pages/admin").then((m) => m.Admin));
const Datasets = lazy(() => import("./pages/datasets").then((m) => m.Datasets));
const DatasetPage = lazy(() => import("./pages/datasets").then((m) => m.DatasetPage));
const Deployments = lazy(() => import("./pages/deployments").then((m) => m.Deployments));
const DeploymentPage = lazy(() => import("./pages/deployments").then((m) => m.DeploymentPage));
const Jobs = lazy(() => import("./pages/jobs").then((m) => m.Jobs));
const JobPage = lazy(() => import("./pages/jobs").then((m) => m.JobPage));
const Library = lazy(() => import("./pages/library").then((m) => m.Library));
const SubmitForm = lazy(() => import("./pages/library").then((m) => m.SubmitForm));
const Models = lazy(() => import("./pages/models").then((m) => m.Models));
const ModelPage = lazy(() => import("./pages/models").then((m) => m.ModelPage));
const Monitoring = lazy(() => import("./pages/monitoring").then((m) => m.Monitoring));
const Pipelines = lazy(() => import("./pages/pipelines").then((m) => m.Pipelines));
const PipelinePage = lazy(() => import("./pages/pipelines").then((m) => m.PipelinePage));
const RunPage = lazy(() => import("./pages/pipelines").then((m) => m.RunPage));

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/models", "Models"],
  ["/deployments", "Deployments"],
  ["/jobs", "Jobs"],
  ["/library", "Model library"],
  ["/datasets", "Datasets"],
  ["/pipelines", "Pipelines"],
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
  if ((m = match("/pipelines/runs/:id", path))) return <RunPage id={Number(m.id)} />;
  if (path === "/pipelines") return <Pipelines />;
  if ((m = match("/pipelines/:name", path))) return <PipelinePage name={m.name} />;
  if (path === "/monitoring" || path.startsWith("/monitoring/"))
    return <Monitoring path={path} query={query} />;
  if (path === "/admin") return <Admin />;
  return <p>No page at this address.</p>;
}

export function App() {
  const { path, query } = useLocation();
  const [me, setMe] = useState<Principal | null>(null);
  const [checking, setChecking] = useState(true);
  const [signingIn, setSigningIn] = useState(false);
  useEffect(() => {
    // Without a token this succeeds only on a server run with auth off.
    whoami()
      .then(setMe)
      .catch(() => session.signOut())
      .finally(() => setChecking(false));
  }, []);
  if (checking) return <p class="loading">Loading…</p>;
  if (!me || signingIn)
    return (
      <SignIn
        onSignedIn={(p) => {
          setSigningIn(false);
          setMe(p);
        }}
      />
    );
  const hasToken = session.token() !== null;
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
            {hasToken ? (
              <button type="button" class="link" onClick={signOut}>
                Sign out
              </button>
            ) : (
              <button type="button" class="link" onClick={() => setSigningIn(true)}>
                Sign in
              </button>
            )}
          </div>
        </nav>
        <main>
          <Page path={path} query={query} />
        </main>
      </div>
    </Me.Provider>
  );
}
