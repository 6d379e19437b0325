import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Principal } from "./api/client";

export const Me = createContext<Principal | null>(null);

/** Whether the signed-in token may change things (viewers see no write buttons). */
export function useCanWrite(): boolean {
  const me = useContext(Me);
  return me !== null && me.role !== "viewer";
}

export function useIsAdmin(): boolean {
  return useContext(Me)?.role === "admin";
}
