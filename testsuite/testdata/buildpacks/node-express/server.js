// An Express app answering its message.txt on $PORT.
const fs = require('fs');
const path = require('path');
const express = require('express');

const message = fs.readFileSync(path.join(__dirname, 'message.txt'), 'utf8');
const app = express();
app.get('/', (req, res) => res.type('text/plain').send(message));
app.listen(Number(process.env.PORT), '0.0.0.0', () => {
  console.log(`express ${require('express/package.json').version} listening on ${process.env.PORT}`);
});
