"""What the tests share, one definition each; test modules import from here (and use
conftest fixtures), never from each other.

- ``settings``: loopback allow-list, ``local_settings``, ``free_port``
- ``conformance``: other people's test data under ``tests/conformance/``
- ``servers``: an aiohttp app or an ASGI app (uvicorn) on a free loopback port
- ``wire``: a raw-bytes server and the HTTP core's ``send`` with fixed timeouts
- ``hostile``: decompression bombs, memory peaks, a resolver with no ``.invalid`` names
- ``clocks``: fake clock and timer wheel
- ``upstream``: a scripted upstream, its connector and a Patchwire wired to it
- ``leaks``: canaries and searching output, files and database rows for them
- ``cli``: the ``patchwire`` command as a subprocess
- ``sandboxes`` (plugin: ``canary``, ``sandbox``): the sandbox APIs and connections to them
- ``flows``: flow documents and settings several suites run
- ``api``: the REST API on loopback and its problem details
- ``dashboard`` (plugin: ``dash``): the app with the dashboard on loopback
- ``oauth``: the sandbox's OAuth2 server, its connector and the code flow
- ``mcp``: the MCP test environment
- ``store`` (plugin: ``store_url``, ``store``): each store test on SQLite and PostgreSQL
- ``temporal`` (plugin: ``temporal_address``): the Temporal dev server and engines
- ``feed``, ``scripted_llm``: an upstream paging every way, a model playing a script
- ``orders``: the one-connector setup of the patchwire.testing tests
- ``engine_worker``, ``ingest_server``: the processes the crash tests kill
- ``custom_code``: the code directory of ``code:`` tests, its modules forgotten after
"""
