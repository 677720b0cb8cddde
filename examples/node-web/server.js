// An Express app: answers on $PORT with a greeting and the process that served it.
const express = require("express");

const app = express();
const port = Number(process.env.PORT || 3000);

app.get("/", (req, res) => {
  res.type("text/plain").send(`Hello from node-web! (served by ${process.env.DYNO || "?"})\n`);
});

app.get("/health", (req, res) => res.json({ ok: true }));

app.listen(port, () => console.log(`node-web listening on port ${port}`));
