/* global require, process, __dirname */
/**
 * Preloaded (node --require) into each of mysql2's own test files by scripts/mysql2-suite.sh:
 * swaps `createPool` and `createPoolCluster` of the node-mysql2 checkout's index.js and
 * promise.js for this package's (its built dist/), before any test module imports them. The
 * tests themselves are run from the checkout, unchanged; nothing of them is copied here.
 */
'use strict';
const path = require('node:path');

const checkout = process.env.MKP_MYSQL2_CHECKOUT;
if (!checkout) throw new Error('mysql2-suite-preload: MKP_MYSQL2_CHECKOUT is not set');
const repo = path.resolve(__dirname, '..', '..');

const ours = require(path.join(repo, 'dist', 'index.cjs'));
const oursPromise = require(path.join(repo, 'dist', 'promise.cjs'));
const theirs = require(path.join(checkout, 'index.js'));
const theirsPromise = require(path.join(checkout, 'promise.js'));

theirs.createPool = ours.createPool;
theirs.createPoolCluster = ours.createPoolCluster;
theirsPromise.createPool = oursPromise.createPool;
theirsPromise.createPoolCluster = oursPromise.createPoolCluster;
