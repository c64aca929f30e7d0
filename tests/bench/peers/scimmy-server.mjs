// A SCIMMY peer for `bench http`: the same in-memory SCIM server a team would write with SCIMMY
// (the resource library) and scimmy-routers (its Express routes), as measured in the peers' table.
// Not part of the product. Run it from a directory where the three packages are installed:
//   npm install scimmy scimmy-routers express
//   node tests/bench/peers/scimmy-server.mjs 8788          # bearer token: any value
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";
import path from "node:path";

// resolve the packages from the working directory (where npm installed them), not this file's
const require = createRequire(path.join(process.cwd(), "index.js"));
const express = require("express");
const { SCIMMY, SCIMMYRouters } = require("scimmy-routers");

const port = Number(process.argv[2] ?? 8788);
const stores = { User: new Map(), Group: new Map() };

// SCIMMY calls these with the resource (its id, or its filter) and the validated data; egress
// applies the filter (SCIMMY's own matcher), SCIMMY sorts and pages what egress returns.
function handlers(type) {
  const store = stores[type];
  return {
    ingress: (resource, instance) => {
      const now = new Date().toISOString();
      if (resource.id) {
        const old = store.get(resource.id);
        if (!old) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        const updated = { ...instance, id: resource.id, meta: { created: old.meta.created, lastModified: now } };
        store.set(resource.id, updated);
        return updated;
      }
      if (type === "User") {
        const name = String(instance.userName).toLowerCase();
        for (const u of store.values()) {
          if (String(u.userName).toLowerCase() === name) throw new SCIMMY.Types.Error(409, "uniqueness", "userName is taken");
        }
      }
      const id = randomUUID();
      const created = { ...instance, id, meta: { created: now, lastModified: now } };
      store.set(id, created);
      return created;
    },
    egress: (resource) => {
      if (resource.id) {
        const r = store.get(resource.id);
        if (!r) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        return r;
      }
      const all = [...store.values()];
      return resource.filter ? resource.filter.match(all) : all;
    },
    degress: (resource) => {
      if (!store.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
    },
  };
}

for (const type of ["User", "Group"]) {
  const h = handlers(type);
  SCIMMY.Resources.declare(SCIMMY.Resources[type]).ingress(h.ingress).egress(h.egress).degress(h.degress);
}

const app = express();
// SCIMMY honours startIndex/count only as numbers; query strings carry text
app.use((req, _res, next) => {
  const query = { ...req.query };
  for (const k of ["startIndex", "count"]) {
    if (typeof query[k] === "string" && /^\d+$/.test(query[k])) query[k] = Number(query[k]);
  }
  // Express 5 computes req.query on each read: pin the converted copy
  Object.defineProperty(req, "query", { value: query, writable: true, configurable: true });
  next();
});
app.use("/scim/v2", new SCIMMYRouters({
  type: "bearer",
  handler: (req) => {
    if (!req.header("Authorization")?.startsWith("Bearer ")) throw new Error("Authorization not detected");
    return "bench";
  },
}));
const server = app.listen(port, "127.0.0.1", () => console.log(`SCIM_BASE_URL=http://127.0.0.1:${port}/scim/v2`));
// keep client connections open between requests (Node closes idle ones after 5 s by default)
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
