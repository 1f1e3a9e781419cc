"""The reconcile core, pure: replica phases and their legal moves, the restart budget, the Observation built
from replica rows and engine samples, and the actions that carry a scaling decision out. The live controller
(llmctl.control) and the simulator (sim) both run it; neither keeps a copy of its rules."""
