import PBFTCheck
import Testing
