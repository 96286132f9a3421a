// Loaded without defer as the first thing in <body>, so it runs before the page is drawn: GOV.UK Frontend
// styles its JavaScript-enhanced components (and its JavaScript starts) only when <body> has this class,
// and the class is added only where ES modules run (the JavaScript is one). It is a file rather than an
// inline snippet so that a strict Content-Security-Policy needs no 'unsafe-inline', hash or nonce.
if ("noModule" in HTMLScriptElement.prototype) {
  document.body.classList.add("govuk-frontend-supported");
}
