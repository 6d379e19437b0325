// Pages load on first visit (their own chunks), so the first route's JavaScript stays small.
import type { FunctionComponent } from "preact";
import { useEffect, useState } from "preact/hooks";

/** A component that imports ``load``'s module the first time it renders. */
export function lazy<P extends object>(
  load: () => Promise<FunctionComponent<P>>,
): FunctionComponent<P> {
  let loaded: FunctionComponent<P> | null = null;
  let pending: Promise<FunctionComponent<P>> | null = null;
  return function Lazy(props: P) {
    const [, tick] = useState(0);
    const [error, setError] = useState<string | null>(null);
    useEffect(() => {
      if (loaded) return;
      pending ??= load();
      pending.then(
        (c) => {
          loaded = c;
          tick((n) => n + 1);
        },
        (e: unknown) => {
          pending = null;
          setError(`this page did not load: ${e instanceof Error ? e.message : String(e)}`);
        },
      );
    }, []);
    if (error) return <p class="error">{error}</p>;
    if (!loaded) return <p class="loading">Loading…</p>;
    const Page = loaded;
    return <Page {...props} />;
  };
}
