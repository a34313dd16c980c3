from . import main

main(prog_name="pos-loyalty")
