import "./style.css";

const greeting = document.querySelector("#greeting");
fetch("/api/hello")
  .then((response) => response.json())
  .then((body) => {
    greeting.textContent = `${body.message} (Node.js ${body.node}, NODE_ENV=${body.env})`;
  });
