import { useState } from "react";
import { api } from "./api";

// The organisation's id and its Kafka password: the broker checks them (a SCRAM handshake).
export function Login() {
  const [org, setOrg] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api.login(org.trim(), password);
      const next = new URLSearchParams(window.location.search).get("next");
      const own = `/orgs/${session.organization_id}`;
      window.location.assign(next && next.startsWith(own) ? next : own);
    } catch (exc) {
      setError((exc as Error).message);
      setBusy(false);
    }
  };
  return (
    <form className="login card" onSubmit={submit}>
      <h1>metricloom</h1>
      <p>Log in as your organisation with its Kafka password (what <code>metricloom tenant add</code> printed).</p>
      <label>
        Organisation
        <input name="organization" value={org} onChange={(e) => setOrg(e.target.value)} autoFocus required />
      </label>
      <label>
        Password
        <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} required />
      </label>
      {error && <p className="error" role="alert">{error}</p>}
      <button type="submit" disabled={busy}>{busy ? "Checking…" : "Log in"}</button>
    </form>
  );
}
