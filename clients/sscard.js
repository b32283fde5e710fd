// sscard host API client (docs/host-api.md). One file, no build step:
//   <script src="sscard.js"></script>
//   const api = new Sscard("http://127.0.0.1:8321");
//   const card = await api.card({ wait: 20 });
//   const stay = await api.hotelCheckin("1208", { wait: 20 });
//   api.events(ev => console.log(ev.type));
(function (root) {
  "use strict";

  class SscardError extends Error {
    constructor(status, code, reason) {
      super(code + ": " + reason);
      this.status = status;
      this.code = code;
      this.reason = reason;
    }
  }

  class Sscard {
    constructor(base, token) {
      this.base = (base || "http://127.0.0.1:8321").replace(/\/$/, "");
      this.token = token || null;
    }

    async _get(path, params) {
      const url = new URL(this.base + path);
      for (const [k, v] of Object.entries(params || {})) {
        if (v !== undefined && v !== null) url.searchParams.set(k, v);
      }
      const headers = this.token ? { Authorization: "Bearer " + this.token } : {};
      let got;
      try {
        got = await fetch(url, { headers });
      } catch (e) {
        throw new SscardError(0, -1, "the terminal refused or is not running");
      }
      const body = await got.json();
      if (!got.ok) throw new SscardError(got.status, body.code, body.reason);
      return body;
    }

    async _post(path, body) {
      const headers = { "Content-Type": "application/json" };
      if (this.token) headers.Authorization = "Bearer " + this.token;
      let got;
      try {
        got = await fetch(this.base + path, { method: "POST", headers, body: JSON.stringify(body) });
      } catch (e) {
        throw new SscardError(0, -1, "the terminal refused or is not running");
      }
      const answer = await got.json();
      if (!got.ok) throw new SscardError(got.status, answer.code, answer.reason);
      return answer;
    }

    readers() {
      return this._get("/v1/readers").then((b) => b.readers);
    }

    card(opts) {
      const o = opts || {};
      return this._get("/v1/card", { wait: o.wait, reader: o.reader });
    }

    ireadcardbas(opts) {
      const o = opts || {};
      return this._get("/v1/card/ireadcardbas", { wait: o.wait, reader: o.reader }).then(
        (b) => b.result
      );
    }

    // the PIN travels in the request body only, never in the URL
    verifyPin(pin, opts) {
      const o = opts || {};
      return this._post("/v1/card/pin/verify", { pin, wait: o.wait || 0, reader: o.reader || null });
    }

    hotelCheckin(room, opts) {
      const o = opts || {};
      return this._post("/v1/hotel/checkin", { room, wait: o.wait || 0, reader: o.reader || null });
    }

    hospitalRegister(pin, opts) {
      const o = opts || {};
      return this._post("/v1/hospital/register", { pin, wait: o.wait || 0, reader: o.reader || null });
    }

    healthz() {
      return this._get("/healthz");
    }

    // card.inserted / card.removed / card.read events over the WebSocket; returns a close function
    events(onEvent) {
      const ws = new WebSocket(
        this.base.replace(/^http/, "ws") + "/v1/ws" + (this.token ? "?token=" + this.token : "")
      );
      ws.onmessage = (m) => onEvent(JSON.parse(m.data));
      return () => ws.close();
    }
  }

  root.Sscard = Sscard;
  root.SscardError = SscardError;
})(typeof window !== "undefined" ? window : globalThis);
