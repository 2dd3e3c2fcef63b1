"""Update algorithms, one module each, chosen by `update.algorithm` (`build.build_algorithm`).

Kept empty on purpose: `loop.config` reads `policies.updates.config`, and importing this
package must not pull in torch and TRL (the CLI answers bad input in well under a second).
"""
