// Live serving figures from successive scrapes of /metrics (the overview's and a deployment's).
import { useEffect, useState } from "preact/hooks";
import { quantileBetween, type Scrape, scrapeMetrics } from "./api/client";

export interface Rates {
  /** Requests answered since the server started. */
  total: number;
  rps: number | null;
  /** Latency quantiles of the requests between the two scrapes, in ms. */
  p50: number | null;
  p99: number | null;
  /** 5xx answers over answers between the two scrapes. */
  errorRate: number | null;
}

/** ``name``'s figures between two scrapes (only the total without an earlier one). */
export function ratesBetween(prev: Scrape | null, now: Scrape, name: string): Rates {
  const total = now.requests[name] ?? 0;
  if (!prev) return { total, rps: null, p50: null, p99: null, errorRate: null };
  const dt = (now.at - prev.at) / 1000;
  const answered = total - (prev.requests[name] ?? 0);
  const failed = (now.errors[name] ?? 0) - (prev.errors[name] ?? 0);
  const ms = (q: number) => {
    const v = quantileBetween(prev.latency[name], now.latency[name], q);
    return v === null ? null : v * 1000;
  };
  return {
    total,
    rps: dt > 0 ? answered / dt : null,
    p50: ms(0.5),
    p99: ms(0.99),
    errorRate: answered > 0 ? failed / answered : null,
  };
}

/** The last two scrapes of /metrics, one every ``ms``. */
export function useScrapes(ms: number): { prev: Scrape | null; now: Scrape | null } {
  const [pair, setPair] = useState<{ prev: Scrape | null; now: Scrape | null }>({
    prev: null,
    now: null,
  });
  useEffect(() => {
    let stopped = false;
    const tick = () =>
      scrapeMetrics().then(
        (s) => !stopped && setPair((p) => ({ prev: p.now, now: s })),
        () => undefined,
      );
    void tick();
    const timer = setInterval(tick, ms);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [ms]);
  return pair;
}

export const fmt = (v: number | null | undefined, digits: number, unit = ""): string =>
  v === null || v === undefined ? "–" : `${v.toFixed(digits)}${unit}`;
