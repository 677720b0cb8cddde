// An Express app installed by its package manager; says which one and which Node.js.
const express = require("express");

const app = express();
app.get("/", (_req, res) => {
  res.send(`Hello from yarn-berry-web on Node.js ${process.versions.node} (${process.env.NODE_ENV})\n`);
});
app.listen(Number(process.env.PORT || 5000), "0.0.0.0");
