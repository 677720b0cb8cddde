// Serves the page Vite built into dist/ at deploy time, and a small JSON API.
import express from "express";

const app = express();
app.get("/api/hello", (_req, res) => {
  res.json({
    message: "Hello from the API",
    node: process.versions.node,
    env: process.env.NODE_ENV,
    dyno: process.env.DYNO,
  });
});
app.use(express.static("dist", { maxAge: "1y", index: "index.html" }));

const port = Number(process.env.PORT || 5000);
app.listen(port, "0.0.0.0", () => {
  console.log(`node-vite listening on ${port}`);
});
