// A client in another language, built from nothing but protos/: calls Router.Quote and
// Orders.GetOrder over plain gRPC and prints what it got as one JSON document.
//
//   node tests/js/grpc_client.mjs '{"router":"127.0.0.1:50052","orders":"127.0.0.1:50051",
//        "orderId":"…","inputMint":"…","outputMint":"…","amountIn":"1500000000","token":"…"}'

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTOS = path.resolve(here, '..', '..', 'protos');
const args = JSON.parse(process.argv[2]);

const definition = protoLoader.loadSync(
  ['orderengine/v1/router.proto', 'orderengine/v1/orders.proto'],
  { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).orderengine.v1;
const credentials = grpc.credentials.createInsecure();
const router = new v1.Router(args.router, credentials);
const orders = new v1.Orders(args.orders, credentials);

/** A unary call as a promise: { ok: response } or { code, details } for a gRPC error. */
function call(client, method, request) {
  return new Promise((resolve) => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${args.token}`); // the service token (common/grpc_auth.py)
    client[method](request, metadata, { deadline: Date.now() + 10000 }, (err, response) => {
      if (err) resolve({ code: err.code, codeName: grpc.status[err.code], details: err.details });
      else resolve({ ok: response });
    });
  });
}

const quote = await call(router, 'Quote', {
  request_id: 'node-quote-1',
  input_mint: args.inputMint,
  output_mint: args.outputMint,
  amount_in: args.amountIn,
  slippage_bps: 100,
});
const badQuote = await call(router, 'Quote', {
  request_id: 'node-quote-2', input_mint: args.inputMint, output_mint: args.inputMint, amount_in: '1', slippage_bps: 100,
});
const order = await call(orders, 'GetOrder', { order_id: args.orderId, with_events: true });
const missing = await call(orders, 'GetOrder', { order_id: '00000000-0000-4000-8000-000000000000' });

router.close();
orders.close();
process.stdout.write(JSON.stringify({ quote, badQuote, order, missing }) + '\n');
