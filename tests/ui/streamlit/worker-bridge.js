// Copied from /work/shared/tools/streamlit-harness/worker-bridge.js (the project's Streamlit test harness);
// tests/ui/streamlit_env.py installs it over stlite 0.45.0's Pyodide worker chunk.
// Replacement for stlite 0.45.0's Pyodide worker chunk (static/js/4581.*.chunk.js).
// Instead of running Python in Pyodide, it forwards stlite's kernel messages to the
// real Streamlit server (tornado) that served this page: WebSocket /_stcore/stream
// and plain HTTP for everything else. Protocol taken from stlite's kernel/src/types.ts.
let ws = null;
const wsQueue = [];
self.onmessage = async (event) => {
  const msg = event.data;
  if (msg.type === "initData") {
    // Files/requirements are ignored: the app lives on the server's disk.
    self.postMessage({ type: "event:progress", data: { message: "Connecting to Streamlit server" } });
    self.postMessage({ type: "event:loaded" });
    return;
  }
  const port = event.ports[0];
  const reply = (m) => { if (port) port.postMessage(m); };
  try {
    switch (msg.type) {
      case "websocket:connect": {
        const url = self.location.origin.replace(/^http/, "ws") + msg.data.path;
        if (ws) { try { ws.close(); } catch (e) {} }
        ws = new WebSocket(url, ["streamlit"]);
        ws.binaryType = "arraybuffer";
        ws.onmessage = (ev) => {
          const payload = typeof ev.data === "string" ? ev.data : new Uint8Array(ev.data);
          self.postMessage({ type: "websocket:message", data: { payload } });
        };
        ws.onclose = () => { self.postMessage({ type: "event:progress", data: { message: "websocket closed" } }); };
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = () => reject(new Error("WebSocket error connecting to " + url));
        });
        while (wsQueue.length) ws.send(wsQueue.shift());
        reply({ type: "reply" });
        break;
      }
      case "websocket:send": {
        const p = msg.data.payload;
        if (ws && ws.readyState === 1) ws.send(p); else wsQueue.push(p);
        reply({ type: "reply" });
        break;
      }
      case "http:request": {
        const r = msg.data.request;
        const init = { method: r.method, headers: r.headers };
        if (r.method !== "GET" && r.body != null) init.body = r.body;
        const res = await fetch(r.path, init);
        const headers = new Map();
        res.headers.forEach((v, k) => headers.set(k, v));
        const body = new Uint8Array(await res.arrayBuffer());
        reply({ type: "http:response", data: { response: { statusCode: res.status, headers, body } } });
        break;
      }
      default: // file:write, file:rename, file:unlink, install: nothing to do
        reply({ type: "reply" });
    }
  } catch (error) {
    const e = new Error(String(error && error.message || error));
    reply({ type: "reply", error: e });
  }
};
self.postMessage({ type: "event:start" });
