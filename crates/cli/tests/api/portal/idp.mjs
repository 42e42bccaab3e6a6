// A real mock OpenID Connect provider for the portal's tests: oauth2-mock-server (npm,
// installed by scripts/test into ~/.cache/rolegate-npm), on 127.0.0.1:$PORT, with a small
// control endpoint on $CONTROL_PORT that the Rust tests use to shape the next ID tokens.
//   POST /claims   {claims}  merged into every ID token from now on (email, groups, ...)
//   POST /next     {claims}  merged into the next ID token only (e.g. a wrong aud)
//   POST /replay-nonce       the next ID token carries the nonce of the previous sign-in
//   POST /rotate             a new signing key, used for the next ID tokens (old one kept)
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(process.env.NPM_PREFIX + "/node_modules/");
const { OAuth2Server, Events } = await import(require.resolve("oauth2-mock-server"));

const server = new OAuth2Server();
let current = await server.issuer.keys.generate("RS256");
let always = {};
let next = {};
const nonces = [];
let replay = false;

server.service.on(Events.BeforeAuthorizeRedirect, (_uri, req) => {
  const u = new URL(req.url, "http://x");
  const nonce = u.searchParams.get("nonce");
  if (nonce) nonces.push(nonce);
});
// The token endpoint signs the access token first, then the ID token (which alone carries
// the nonce): the overrides apply to ID tokens.
server.service.on(Events.BeforeTokenSigning, (token) => {
  if (token.payload.nonce === undefined) return;
  Object.assign(token.payload, always, next);
  next = {};
  if (replay && nonces.length >= 2) {
    token.payload.nonce = nonces[nonces.length - 2];
    replay = false;
  }
});

// The issuer is the address the server listens on (the library would say "localhost").
server.issuer.url = `http://127.0.0.1:${process.env.PORT}`;
await server.start(Number(process.env.PORT), "127.0.0.1");

const body = (req) =>
  new Promise((resolve) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => resolve(data ? JSON.parse(data) : {}));
  });

http
  .createServer(async (req, res) => {
    const b = await body(req);
    if (req.url === "/claims") always = b;
    else if (req.url === "/next") next = b;
    else if (req.url === "/replay-nonce") replay = true;
    else if (req.url === "/rotate") {
      // Keys are handed out round-robin, two tokens per sign-in (access, then ID): with
      // [old, new] every ID token from now on is signed with the new key.
      current = await server.issuer.keys.generate("RS256");
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ kid: current.kid }));
  })
  .listen(Number(process.env.CONTROL_PORT), "127.0.0.1", () => console.log("ready"));
